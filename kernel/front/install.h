/* What an install_packages request checks and where its files go
   (install_files.c), for the request's queue and process (install.c).  */
#ifndef KILN_FRONT_INSTALL_H
#define KILN_FRONT_INSTALL_H

#include "internal.h"

/* NAME (LEN bytes) normalised as PEP 503 says: lower case, each run of
   - _ . one - (allocated).  */
char *install_normalise(const char *name, size_t len);

/* Checks SPEC: NAME[EXTRAS][SPECIFIERS], specifiers as OP VERSION joined
   by commas.  Sets *NAME (normalised, allocated) and *PINNED (exactly one
   == of a version without a wildcard).  -1 with ERR saying what is
   wrong.  */
int install_parse_spec(const char *spec, char **name, bool *pinned, kiln_error_t *err);

/* Reads --allow-packages once: "*", names separated by commas, or a file
   of names.  */
int install_allow_load(struct front *f, kiln_error_t *err);
bool install_allowed(const struct install_link *l, const char *name);

/* KILN_HOME/packages/SUB (allocated).  */
char *install_packages_dir(const struct front *f, const char *sub);
void install_rm_tree(const char *dir);

/* The distributions in site directory DIR, as "name version" of each
   NAME-VERSION.dist-info (NAMES and VERSIONS allocated, N of each).  */
struct dists {
  char **names, **versions;
  size_t n;
};
void dists_read(const char *dir, struct dists *out);
void dists_free(struct dists *d);

/* The site directory pip filled under PREFIX (lib/python3.X/site-packages,
   or Debian's local/lib/python3.X/dist-packages): the first directory,
   breadth first to DEPTH, holding a .dist-info.  Allocated, or NULL.  */
char *install_find_site(const char *prefix, int depth);

/* Every distribution D of SITE allowed and within --max-package-size;
   else -1 with ERR naming the first that is not.  */
int install_check_dists(struct front *f, const char *site, const struct dists *d,
                        kiln_error_t *err);

/* Hard-links the tree SRC into DST (the same filesystem: KILN_HOME);
   files already there are kept.  */
int install_link_tree(const char *src, const char *dst, kiln_error_t *err);

/* Writes the venv's packages as pip constraints (name==version) under
   KILN_HOME/packages; returns the file's path (allocated), or NULL with
   ERR.  */
char *install_write_constraints(struct front *f, kiln_error_t *err);

/* Makes every file under DIR the front's own.  */
void install_own_tree(const char *dir);

#endif
