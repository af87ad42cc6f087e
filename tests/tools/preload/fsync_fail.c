/* fsync_fail.c: an LD_PRELOAD shim for the tests: every fsync of the
 * directory VB_FSYNC_FAIL_DIR names fails with EIO, as on a file system that
 * cannot make a rename durable; every other fsync is the real one. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int fsync(int fd)
{
	static int (*real)(int);
	const char *dir = getenv("VB_FSYNC_FAIL_DIR");
	struct stat a, b;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fsync");
	if (dir && fstat(fd, &a) == 0 && S_ISDIR(a.st_mode) && stat(dir, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
		errno = EIO;
		return -1;
	}
	return real(fd);
}
