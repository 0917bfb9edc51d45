#ifndef PROCFS_H
#define PROCFS_H
/* procfs.c: /proc/self/fd's links (fs_lock held). */
struct inode;
extern struct inode *proc_fd_dir;           /* /proc/self/fd, made by tmpfs_init */
struct inode *proc_fd_link(const char *name);   /* NULL: no such fd */
int proc_fd_number(const struct inode *inode);  /* the fd a link is of, or -1 */
struct file;
/* A new open file on what fd N is open on, as an open of /proc/self/fd/N makes. */
long proc_fd_reopen(int fd, unsigned flags, struct file **out);
/* /proc/interrupts (made by tmpfs_init): its counts as of now, before each open. */
extern struct inode *proc_interrupts;
void proc_interrupts_refresh(void);
extern const struct file_ops proc_interrupts_ops;   /* read as a file; a write is EIO */
#endif
