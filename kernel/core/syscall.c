/*
 * The system call entry, after arch/x64/entry.S's syscall_entry switched to the kernel
 * stack and the kernel TCB: the call goes into the syscall history, then through the
 * table to the function that does it (syscalls.h says which file has which), and its
 * result back into the history and to --strace. Pointers from the app are checked
 * against its page tables before anything touches them (-EFAULT otherwise).
 */
#include "arch.h"
#include "console.h"
#include "fscheck.h"
#include "inject.h"
#include "lib.h"
#include "process.h"
#include "signal.h"
#include "syscall_history.h"
#include "syscalls.h"
#include "thread.h"
#include "trap.h"
#include <asm/unistd_64.h>
#include <asm-generic/errno.h>

static syscall_fn *const syscalls[] = {
    /* sysfile.c */
    [__NR_read] = sys_read,             [__NR_write] = sys_write,
    [__NR_pread64] = sys_pread64,       [__NR_pwrite64] = sys_pwrite64,
    [__NR_readv] = sys_readv,           [__NR_writev] = sys_writev,
    [__NR_preadv] = sys_preadv,         [__NR_pwritev] = sys_pwritev,
    [__NR_lseek] = sys_lseek,           [__NR_sendfile] = sys_sendfile,
    [__NR_close] = sys_close,           [__NR_dup] = sys_dup,
    [__NR_dup2] = sys_dup2,             [__NR_dup3] = sys_dup3,
    [__NR_fcntl] = sys_fcntl,           [__NR_ioctl] = sys_ioctl,
    [__NR_pipe] = sys_pipe,             [__NR_pipe2] = sys_pipe2,
    [__NR_fstat] = sys_fstat,           [__NR_getdents64] = sys_getdents64,
    [__NR_fsync] = sys_fsync,           [__NR_fdatasync] = sys_fsync,
    [__NR_syncfs] = sys_fsync,          [__NR_sync] = sys_sync,
    [__NR_ftruncate] = sys_ftruncate,   [__NR_fallocate] = sys_fallocate,
    [__NR_flock] = sys_flock,           [__NR_fchmod] = sys_fchmod,
    [__NR_fchown] = sys_fchown,         [__NR_fchdir] = sys_fchdir,
    [__NR_fstatfs] = sys_fstatfs,       [__NR_fadvise64] = sys_fadvise64,
    /* syspath.c */
    [__NR_open] = sys_open,             [__NR_openat] = sys_openat,
    [__NR_creat] = sys_creat,           [__NR_stat] = sys_stat,
    [__NR_lstat] = sys_lstat,           [__NR_newfstatat] = sys_newfstatat,
    [__NR_statx] = sys_statx,           [__NR_access] = sys_access,
    [__NR_faccessat] = sys_faccessat,   [__NR_faccessat2] = sys_faccessat2,
    [__NR_readlink] = sys_readlink,     [__NR_readlinkat] = sys_readlinkat,
    [__NR_truncate] = sys_truncate,     [__NR_utimensat] = sys_utimensat,
    [__NR_utime] = sys_utime,           [__NR_utimes] = sys_utimes,
    [__NR_futimesat] = sys_futimesat,   [__NR_chmod] = sys_chmod,
    [__NR_fchmodat] = sys_fchmodat,     [__NR_chown] = sys_chown,
    [__NR_lchown] = sys_lchown,         [__NR_fchownat] = sys_fchownat,
    [__NR_chdir] = sys_chdir,           [__NR_getcwd] = sys_getcwd,
    [__NR_umask] = sys_umask,           [__NR_statfs] = sys_statfs,
    [__NR_listxattr] = sys_listxattr,   [__NR_llistxattr] = sys_llistxattr,
    [__NR_flistxattr] = sys_flistxattr, [__NR_getxattr] = sys_getxattr,
    [__NR_lgetxattr] = sys_lgetxattr,   [__NR_fgetxattr] = sys_fgetxattr,
    [__NR_setxattr] = sys_setxattr,     [__NR_lsetxattr] = sys_lsetxattr,
    [__NR_fsetxattr] = sys_fsetxattr,
    /* sysname.c */
    [__NR_mkdir] = sys_mkdir,           [__NR_mkdirat] = sys_mkdirat,
    [__NR_mknod] = sys_mknod,           [__NR_mknodat] = sys_mknodat,
    [__NR_rmdir] = sys_rmdir,           [__NR_unlink] = sys_unlink,
    [__NR_unlinkat] = sys_unlinkat,     [__NR_rename] = sys_rename,
    [__NR_renameat] = sys_renameat,     [__NR_renameat2] = sys_renameat2,
    [__NR_link] = sys_link,             [__NR_linkat] = sys_linkat,
    [__NR_symlink] = sys_symlink,       [__NR_symlinkat] = sys_symlinkat,
    /* sysmem.c */
    [__NR_brk] = sys_brk,               [__NR_mmap] = sys_mmap,
    [__NR_munmap] = sys_munmap,         [__NR_mprotect] = sys_mprotect,
    [__NR_madvise] = sys_madvise,       [__NR_mremap] = sys_mremap,
    [__NR_mlock] = sys_mlock,           [__NR_mlock2] = sys_mlock2,
    [__NR_munlock] = sys_munlock,       [__NR_mlockall] = sys_mlockall,
    [__NR_munlockall] = sys_munlockall,
    /* systime.c */
    [__NR_clock_gettime] = sys_clock_gettime, [__NR_clock_getres] = sys_clock_getres,
    [__NR_gettimeofday] = sys_gettimeofday,   [__NR_time] = sys_time,
    [__NR_nanosleep] = sys_nanosleep,         [__NR_clock_nanosleep] = sys_clock_nanosleep,
    [__NR_getrusage] = sys_getrusage,         [__NR_times] = sys_times,
    [__NR_sysinfo] = sys_sysinfo,
    /* sysproc.c */
    [__NR_arch_prctl] = sys_arch_prctl, [__NR_set_tid_address] = sys_set_tid_address,
    [__NR_set_robust_list] = sys_set_robust_list, [__NR_rseq] = sys_rseq,
    [__NR_uname] = sys_uname,           [__NR_prlimit64] = sys_prlimit64,
    [__NR_getrlimit] = sys_getrlimit,   [__NR_setrlimit] = sys_setrlimit,
    [__NR_getrandom] = sys_getrandom,   [__NR_prctl] = sys_prctl,
    [__NR_futex] = sys_futex,           [__NR_sched_yield] = sys_sched_yield,
    [__NR_sched_getaffinity] = sys_sched_getaffinity,
    [__NR_sched_setaffinity] = sys_sched_setaffinity,
    [__NR_getcpu] = sys_getcpu,         [__NR_getpid] = sys_getpid,
    [__NR_getpgrp] = sys_getpid,        [__NR_getppid] = sys_getppid,
    [__NR_gettid] = sys_gettid,         [__NR_getuid] = sys_getuid,
    [__NR_geteuid] = sys_getuid,        [__NR_getgid] = sys_getuid,
    [__NR_getegid] = sys_getuid,        [__NR_getgroups] = sys_getgroups,
    [__NR_socket] = sys_socket,         [__NR_getpeername] = sys_not_a_socket,
    [__NR_getsockname] = sys_not_a_socket, [__NR_fork] = sys_fork,
    [__NR_vfork] = sys_fork,
    /* process.c */
    [__NR_clone] = sys_clone,           [__NR_clone3] = sys_clone3,
    [__NR_exit] = sys_exit,             [__NR_exit_group] = sys_exit_group,
    [__NR_kill] = sys_kill,             [__NR_tkill] = sys_tkill,
    [__NR_tgkill] = sys_tgkill,         [__NR_rt_sigqueueinfo] = sys_rt_sigqueueinfo,
    [__NR_rt_tgsigqueueinfo] = sys_rt_tgsigqueueinfo,
    /* signal.c */
    [__NR_rt_sigaction] = sys_rt_sigaction, [__NR_rt_sigprocmask] = sys_rt_sigprocmask,
    [__NR_rt_sigpending] = sys_rt_sigpending, [__NR_sigaltstack] = sys_sigaltstack,
    [__NR_rt_sigsuspend] = sys_rt_sigsuspend, [__NR_pause] = sys_pause,
    [__NR_rt_sigtimedwait] = sys_rt_sigtimedwait, [__NR_setitimer] = sys_setitimer,
    [__NR_getitimer] = sys_getitimer,   [__NR_alarm] = sys_alarm,
    /* timer.c */
    [__NR_timer_create] = sys_timer_create, [__NR_timer_settime] = sys_timer_settime,
    [__NR_timer_gettime] = sys_timer_gettime, [__NR_timer_getoverrun] = sys_timer_getoverrun,
    [__NR_timer_delete] = sys_timer_delete,
    /* poll.c, epoll.c, eventfd.c */
    [__NR_poll] = sys_poll,             [__NR_ppoll] = sys_ppoll,
    [__NR_select] = sys_select,         [__NR_pselect6] = sys_pselect6,
    [__NR_epoll_create] = sys_epoll_create, [__NR_epoll_create1] = sys_epoll_create1,
    [__NR_epoll_ctl] = sys_epoll_ctl,   [__NR_epoll_wait] = sys_epoll_wait,
    [__NR_epoll_pwait] = sys_epoll_pwait, [__NR_epoll_pwait2] = sys_epoll_pwait2,
    [__NR_eventfd] = sys_eventfd,       [__NR_eventfd2] = sys_eventfd2,
};

/* One call through the table; a number without an entry is ENOSYS, said on the console. */
static long dispatch(const struct syscall_frame *f, u64 nr, const u64 *a)
{
    struct syscall_args call = { { a[0], a[1], a[2], a[3], a[4], a[5] }, f };
    if (nr < ARRAY_SIZE(syscalls) && syscalls[nr])
        return syscalls[nr](&call);
    const char *name = syscall_name(nr);
    if (name)
        printk("osv: unimplemented syscall %s (%lu)\n", name, nr);
    else
        printk("osv: unknown syscall %lu\n", nr);
    return -ENOSYS;
}

/* The call's result in its history record, on --strace and for osv-trace. */
static void syscall_done(struct syscall_record *r, const struct syscall_record *call)
{
    syscall_history_exit(r, call->seq, call->ret);
    if (process.strace)
        strace_print(call, true);
    syscall_trace_check(false);
}

long syscall_handler(struct syscall_frame *f)
{
    this_cpu()->entries++;
    if (fscheck_enabled)
        fscheck_syscall_entry(f);
    kernel_tls_check();
    signal_syscall_entry(current_thread, f->rsp);
    struct syscall_record *r = syscall_history_enter(f, current_thread->tid);
    /* A copy: the ring slot may be reused by other calls while this one runs. */
    struct syscall_record call = *r;
    current_thread->syscall_record = r;
    current_thread->syscall_seq = call.seq;
    if (f->rax == __NR_exit || f->rax == __NR_exit_group) {
        if (process.strace)
            strace_print(&call, false); /* they never return: strace prints "= ?" */
        if (syscall_trace_batch)
            syscall_trace_flush();      /* osv-trace shows the calls before the end */
        if (injected & INJECT_TRIPLE_FAULT)
            arch_triple_fault();        /* the app ran; its end resets the machine instead */
    }
    if (f->rax == __NR_rt_sigreturn) {
        /*
         * The handler's context goes back whole, rcx and r11 too, which syscall_exit
         * would set from rip and rflags: leave through the interrupt exit with a
         * trap_frame built here, interrupts off throughout. sigreturn_exit takes rsp up
         * to it; what lies below (this function's callees) is dead by then.
         */
        struct trap_frame tf;
        call.ret = signal_return(f, &tf);
        syscall_done(r, &call);
        signal_trap_exit(&tf);          /* one the handler's mask held back comes now */
        sigreturn_exit(&tf);
    }
    /* Interrupts on while the call runs: the timer may preempt it, as the issue asks. */
    __asm__ __volatile__("sti" : : : "memory");
    call.ret = dispatch(f, f->rax, call.args);
    __asm__ __volatile__("cli" : : : "memory");
    syscall_done(r, &call);
    return signal_syscall_exit(f, call.ret);    /* may enter a signal handler instead */
}
