/* fault_shim.c — an LD_PRELOAD library for tests/integration/test_faults.py: storage faults on
 * demand in a real server process. While the file named by LS_FAULT_TRIGGER exists, every write,
 * sync or truncate of a file whose path begins with LS_FAULT_PREFIX fails with LS_FAULT_ERRNO
 * (EIO, EROFS or ENOSPC; default EIO): a failing disk, a file system the kernel remounted
 * read-only after an error, a full disk, each switched on and off while the server runs.
 * Reads are never touched, nor any other file (sockets, logs). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* 1 when the fault is on and fd is one of the files under the prefix. Called for every write of
 * the process: a stat and a readlink each, which only tests pay. errno is kept for the caller. */
static int faulty(int fd) {
  const char *trigger = getenv("LS_FAULT_TRIGGER"), *prefix = getenv("LS_FAULT_PREFIX");
  if(!trigger || !prefix || !*prefix)
    return 0;
  int saved = errno, hit = 0;
  if(access(trigger, F_OK) == 0) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if(n > 0) {
      path[n] = '\0';
      hit = strncmp(path, prefix, strlen(prefix)) == 0;
    }
  }
  errno = saved;
  return hit;
}

static int fault_errno(void) {
  const char *e = getenv("LS_FAULT_ERRNO");
  if(e && !strcmp(e, "EROFS"))
    return EROFS;
  if(e && !strcmp(e, "ENOSPC"))
    return ENOSPC;
  return EIO;
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))
#define FAIL_IF_FAULTY(fd)     \
  do {                         \
    if(faulty(fd)) {           \
      errno = fault_errno();   \
      return -1;               \
    }                          \
  } while(0)

ssize_t write(int fd, const void *buf, size_t n) {
  FAIL_IF_FAULTY(fd);
  return REAL(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  FAIL_IF_FAULTY(fd);
  return REAL(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
  FAIL_IF_FAULTY(fd);
  return REAL(pwrite64)(fd, buf, n, off);
}

int fsync(int fd) {
  FAIL_IF_FAULTY(fd);
  return REAL(fsync)(fd);
}

int fdatasync(int fd) {
  FAIL_IF_FAULTY(fd);
  return REAL(fdatasync)(fd);
}

int ftruncate(int fd, off_t len) {
  FAIL_IF_FAULTY(fd);
  return REAL(ftruncate)(fd, len);
}

int ftruncate64(int fd, off64_t len) {
  FAIL_IF_FAULTY(fd);
  return REAL(ftruncate64)(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  FAIL_IF_FAULTY(fd);
  return REAL(fallocate)(fd, mode, off, len);
}

int posix_fallocate(int fd, off_t off, off_t len) {
  if(faulty(fd))
    return fault_errno(); /* posix_fallocate returns the error, errno untouched */
  return REAL(posix_fallocate)(fd, off, len);
}
