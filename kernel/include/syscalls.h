#ifndef SYSCALLS_H
#define SYSCALLS_H
/*
 * The system calls, as xv6 lays them out: syscall.c has the entry, the table from
 * number to function and the dispatch; each call lives in the file of its subject and
 * takes its arguments from struct syscall_args itself. Each returns its result or
 * -errno, as Linux's do.
 *
 *   sysfile.c   calls on fds: read, write and their vectors and offsets, lseek,
 *               sendfile, close, dup, fcntl, ioctl, pipe, fstat, getdents64, fsync,
 *               ftruncate, fchmod, fchown, fchdir, fstatfs
 *   syspath.c   calls on path names: open, stat, access, readlink, truncate,
 *               utimensat, chmod, chown, chdir, getcwd, umask, statfs
 *   sysname.c   the calls that make and remove names: mknod, mkdir, rmdir, unlink,
 *               rename, link, symlink
 *   sysmem.c    brk, mmap, munmap, mprotect, madvise, mremap, the mlock family
 *   systime.c   clocks, sleeping, CPU time (getrusage, times), sysinfo
 *   sysproc.c   the process's surroundings: arch_prctl, tids, uname, limits, random,
 *               prctl, futexes, CPUs, ids, and what there is not (sockets, fork)
 *   process.c   clone, clone3, exit, kill, tgkill, rt_sigqueueinfo
 *   signal.c    rt_sigaction and the other signal calls, setitimer, alarm
 *   timer.c     the POSIX timers
 *   poll.c, epoll.c, eventfd.c   waiting for fds, and eventfds
 */
#include "types.h"

struct syscall_frame;

/* A call's arguments (rdi, rsi, rdx, r10, r8, r9) and the app's registers at the call. */
struct syscall_args {
    u64 arg[6];
    const struct syscall_frame *frame;
};

typedef long syscall_fn(const struct syscall_args *call);

/* sysfile.c */
syscall_fn sys_read, sys_write, sys_pread64, sys_pwrite64, sys_readv, sys_writev, sys_preadv,
    sys_pwritev, sys_lseek, sys_sendfile, sys_close, sys_dup, sys_dup2, sys_dup3, sys_fcntl,
    sys_ioctl, sys_pipe, sys_pipe2, sys_fstat, sys_getdents64, sys_fsync, sys_sync,
    sys_ftruncate, sys_fallocate, sys_flock, sys_fchmod, sys_fchown, sys_fchdir, sys_fstatfs,
    sys_fadvise64;
/* syspath.c */
syscall_fn sys_open, sys_openat, sys_creat, sys_stat, sys_lstat, sys_newfstatat, sys_statx,
    sys_access, sys_faccessat, sys_faccessat2, sys_readlink, sys_readlinkat, sys_truncate,
    sys_utimensat, sys_utime, sys_utimes, sys_futimesat, sys_chmod, sys_fchmodat, sys_chown,
    sys_lchown, sys_fchownat, sys_chdir, sys_getcwd, sys_umask, sys_statfs, sys_listxattr,
    sys_llistxattr, sys_flistxattr, sys_getxattr, sys_lgetxattr, sys_fgetxattr, sys_setxattr,
    sys_lsetxattr, sys_fsetxattr;
/* sysname.c */
syscall_fn sys_mkdir, sys_mkdirat, sys_mknod, sys_mknodat, sys_rmdir, sys_unlink, sys_unlinkat,
    sys_rename, sys_renameat, sys_renameat2, sys_link, sys_linkat, sys_symlink, sys_symlinkat;
/* sysmem.c */
syscall_fn sys_brk, sys_mmap, sys_munmap, sys_mprotect, sys_madvise, sys_mremap, sys_mlock,
    sys_mlock2, sys_munlock, sys_mlockall, sys_munlockall;
/* systime.c */
syscall_fn sys_clock_gettime, sys_clock_getres, sys_gettimeofday, sys_time, sys_nanosleep,
    sys_clock_nanosleep, sys_getrusage, sys_times, sys_sysinfo;
/* sysproc.c */
syscall_fn sys_arch_prctl, sys_set_tid_address, sys_set_robust_list, sys_rseq, sys_uname,
    sys_prlimit64, sys_getrlimit, sys_setrlimit, sys_getrandom, sys_prctl, sys_futex,
    sys_sched_yield, sys_sched_getaffinity, sys_sched_setaffinity, sys_getcpu, sys_getpid,
    sys_getppid, sys_gettid, sys_getuid, sys_getgroups, sys_socket, sys_not_a_socket, sys_fork;
/* process.c */
syscall_fn sys_clone, sys_clone3, sys_exit, sys_exit_group, sys_kill, sys_tkill, sys_tgkill,
    sys_rt_sigqueueinfo, sys_rt_tgsigqueueinfo;
/* signal.c */
syscall_fn sys_rt_sigaction, sys_rt_sigprocmask, sys_rt_sigpending, sys_sigaltstack,
    sys_rt_sigsuspend, sys_pause, sys_rt_sigtimedwait, sys_setitimer, sys_getitimer, sys_alarm;
/* timer.c */
syscall_fn sys_timer_create, sys_timer_settime, sys_timer_gettime, sys_timer_getoverrun,
    sys_timer_delete;
/* poll.c */
syscall_fn sys_poll, sys_ppoll, sys_select, sys_pselect6;
/* epoll.c */
syscall_fn sys_epoll_create, sys_epoll_create1, sys_epoll_ctl, sys_epoll_wait, sys_epoll_pwait,
    sys_epoll_pwait2;
/* eventfd.c */
syscall_fn sys_eventfd, sys_eventfd2;
#endif
