/* A minimal table-driven test harness: each test is a function, a failed
   CHECK prints where and why and marks the run failed.  */
#ifndef KILN_TEST_CHECK_H
#define KILN_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", __FILE__, __LINE__, __func__, #cond);       \
      check_failures++;                                                                            \
    }                                                                                              \
  } while (0)

struct test_case {
  const char *name;
  void (*fn)(void);
};

static inline int
run_tests(const struct test_case *cases, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int before = check_failures;
    cases[i].fn();
    printf("%s %s\n", check_failures == before ? "ok  " : "FAIL", cases[i].name);
  }
  return check_failures ? 1 : 0;
}

#define RUN(cases) run_tests(cases, sizeof cases / sizeof cases[0])

#endif
