/* The installer's process: pip in a jail of its own, its network only
   the proxy to the package index (installer.c).  The front starts it as
   `kiln __install OPTIONS -- SPEC...` for each install_packages request
   and reads what it prints.  */
#ifndef KILN_INSTALLER_H
#define KILN_INSTALLER_H

#define INSTALLER_COMMAND "__install"

/* Its exit status besides pip's own.  */
#define INSTALL_EXIT_SETUP 70 /* the jail or the proxy could not be set up */
#define INSTALL_EXIT_PROXY 71 /* the downloads went over --max-bytes */

/* `kiln __install ...`: returns the exit status.  */
int pkg_install_main(int argc, char **argv);

#endif
