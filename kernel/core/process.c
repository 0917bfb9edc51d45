/* The app as a whole: its identity and its end. */
#include "process.h"
#include "arch.h"
#include "console.h"
#include "mm.h"
#include "syscall_history.h"
#include "thread.h"

struct process process;
static struct thread *main_thread;

void process_set_main_thread(struct thread *t) { main_thread = t; }

/* Linux's pid is the main thread's tid. */
int process_pid(void) { return main_thread ? main_thread->tid : 0; }

noreturn void process_exit(int status)
{
    if (process.verbose)
        printk("osv: exit status %d after %lu syscalls; kernel TLS checked %lu times, FS base "
               "written by %s; %lu app pages populated on demand\n", status, syscall_seq,
               kernel_tls_checks, fsgsbase_avail ? "wrfsbase" : "wrmsr", user_pages_populated);
    arch_exit_qemu(status);
}
