#define _GNU_SOURCE
/* Limits: sizes, seconds and counts from flags and the environment.  */
#include "check.h"
#include "config.h"
#include "util.h"

static void
sizes_accept_units_and_refuse_garbage(void)
{
  size_t v;
  CHECK(config_parse_size("65536", &v) == 0 && v == 65536);
  CHECK(config_parse_size("256K", &v) == 0 && v == 256 << 10);
  CHECK(config_parse_size("16M", &v) == 0 && v == 16 << 20);
  CHECK(config_parse_size("1MiB", &v) == 0 && v == 1 << 20);
  CHECK(config_parse_size("0", &v) == -1);
  CHECK(config_parse_size("-5", &v) == -1);
  CHECK(config_parse_size("12Q", &v) == -1);
  CHECK(config_parse_size("", &v) == -1);
  CHECK(config_parse_size("99999999999999999999G", &v) == -1);
}

static void
seconds_must_be_positive_and_finite(void)
{
  double d;
  CHECK(config_parse_seconds("0.5", &d) == 0 && d == 0.5);
  CHECK(config_parse_seconds("30", &d) == 0 && d == 30);
  CHECK(config_parse_seconds("0", &d) == -1);
  CHECK(config_parse_seconds("-1", &d) == -1);
  CHECK(config_parse_seconds("nan", &d) == -1);
  CHECK(config_parse_seconds("inf", &d) == -1);
  CHECK(config_parse_seconds("3s", &d) == -1);
}

static void
environment_variables_set_and_flags_override(void)
{
  struct kiln_config cfg;
  setenv("KILN_TIMEOUT", "7", 1);
  setenv("KILN_MAX_OUTPUT", "1K", 1);
  CHECK(config_init(&cfg, NULL) == 0);
  CHECK(cfg.timeout_s == 7 && cfg.max_output == 1024);
  CHECK(config_set(&cfg, "timeout", "3", NULL) == 0 && cfg.timeout_s == 3);
  kiln_error_t err = NULL;
  CHECK(config_set(&cfg, "no-such-flag", "1", &err) == -1 && strstr(err->msg, "no-such-flag"));
  kiln_error_release(&err);
  CHECK(config_set(&cfg, "max-sessions", "0", NULL) == -1);
  config_free(&cfg);
  setenv("KILN_TIMEOUT", "soon", 1);
  CHECK(config_init(&cfg, &err) == -1 && strstr(err->msg, "KILN_TIMEOUT"));
  kiln_error_release(&err);
  config_free(&cfg);
  unsetenv("KILN_TIMEOUT");
  unsetenv("KILN_MAX_OUTPUT");
}

static void
known_settings_are_told_from_unknown_ones(void)
{
  CHECK(config_known("timeout"));
  CHECK(config_known("insecure-no-sandbox"));
  CHECK(!config_known("bogus"));
  CHECK(!config_known("workdir"));
  CHECK(!config_known(""));
}

static const struct test_case cases[] = {
  { "sizes accept units and refuse garbage", sizes_accept_units_and_refuse_garbage },
  { "seconds must be positive and finite", seconds_must_be_positive_and_finite },
  { "environment variables set and flags override", environment_variables_set_and_flags_override },
  { "known settings are told from unknown ones", known_settings_are_told_from_unknown_ones },
};

int
main(void)
{
  return RUN(cases);
}
