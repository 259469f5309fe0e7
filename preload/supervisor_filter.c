/*
 * supervisor_filter.c: the seccomp filter a supervised program runs under,
 * the kernel features it needs, and its installation in the child.
 *
 * The filter (classic BPF, evaluated by the kernel at every system call of
 * every thread of the tree, inherited across fork() and exec()) returns:
 *
 *   connect, getpeername,       USER_NOTIF (the supervisor answers), unless
 *   sendmsg, sendmmsg           the descriptor argument carries the library's
 *                               mark in its upper 32 bits (syscall.c): the
 *                               library applied the policy itself
 *   sendto                      the same, and ALLOW when it names no
 *                               destination (send() on a connected socket:
 *                               its destination was supervised already)
 *   recvfrom                    the same, ALLOW when it asks no source
 *                               address (recv()): the supervisor shows the
 *                               nameserver as the source of its own DNS
 *                               answers to a query sent with sendto()
 *   socket                      EAFNOSUPPORT for AF_SMC, AF_RDS, AF_PACKET,
 *                               EPROTONOSUPPORT for IPPROTO_SCTP: they carry
 *                               IP the policy cannot follow
 *   io_uring_setup              ENOSYS, as the library answers it: a ring
 *                               connects and sends with no system call we
 *                               see (SOCKSIFY_IOURING=allow: ALLOW)
 *   everything else             ALLOW
 *
 * The kernel caches "always ALLOW" per system call number, so a program
 * pays for the filter only on the calls above. The x32 ABI of x86-64 and the
 * other ABI a 64-bit kernel runs (i386, arm32) get EPERM for their socket
 * calls instead: they fail closed, never around the tunnel.
 *
 * Installed by the child between fork() and exec(): PR_SET_NO_NEW_PRIVS
 * (required of an unprivileged filter; set-id bits and file capabilities
 * then confer nothing), seccomp(SECCOMP_SET_MODE_FILTER,
 * SECCOMP_FILTER_FLAG_NEW_LISTENER), and the listener descriptor goes to the
 * parent over a socketpair with SCM_RIGHTS, sent with a marked sendmsg()
 * since the filter already applies to the child itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <netinet/in.h>

#include "preload.h"
#include "supervisor.h"

#if defined(__x86_64__)
#define SUP_ARCH		AUDIT_ARCH_X86_64
#define SUP_X32_BIT		0x40000000u
#define SUP_FOREIGN_ARCH	AUDIT_ARCH_I386
/* i386: socketcall, connect, sendto, sendmsg, sendmmsg, getpeername, io_uring_setup */
static const uint32_t sup_foreign_nrs[] = { 102, 362, 369, 370, 345, 368, 425 };
/* x32 (nr | SUP_X32_BIT): connect, sendto, sendmsg, sendmmsg, getpeername, io_uring_setup */
static const uint32_t sup_x32_nrs[] = { 42, 44, 518, 538, 52, 425 };
#elif defined(__aarch64__)
#define SUP_ARCH		AUDIT_ARCH_AARCH64
#define SUP_FOREIGN_ARCH	AUDIT_ARCH_ARM
/* arm32 EABI: connect, sendto, sendmsg, sendmmsg, getpeername, io_uring_setup */
static const uint32_t sup_foreign_nrs[] = { 283, 290, 296, 374, 287, 425 };
#endif

#define SUP_FILTER_MAX		96		/* instructions */
#define SUP_AF_SMC		43		/* AF_SMC, which older headers lack */
#define SUP_ARG_LO(i)		(offsetof(struct seccomp_data, args) + 8 * (i) + \
				    (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 0 : 4))
#define SUP_ARG_HI(i)		(offsetof(struct seccomp_data, args) + 8 * (i) + \
				    (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 4 : 0))

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV	(1UL << 5)
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF	0x7fc00000U
#endif

static long
sup_seccomp(unsigned op, unsigned flags, void *arg)
{
	return syscall(SYS_seccomp, op, flags, arg);
}

const char *
sup_kernel_lacks(void)
{
#ifndef SUP_ARCH
	return "seccomp supervision on this architecture";
#else
	struct seccomp_notif_sizes sizes;
	uint32_t action = SECCOMP_RET_USER_NOTIF;
	char probe;
	struct iovec local = { &probe, 1 }, remote = { &probe, 1 };
	int pidfd, fd;

	if (sup_seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action) != 0 ||
	    sup_seccomp(SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
		return "seccomp user notification (Linux 5.0)";
	pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0)
		return "pidfd_open() (Linux 5.3)";
	fd = (int)syscall(SYS_pidfd_getfd, pidfd, STDERR_FILENO, 0);
	if (fd < 0 && errno != EBADF) {
		close(pidfd);
		return errno == ENOSYS ? "pidfd_getfd() (Linux 5.6)" :
		    "pidfd_getfd() permission (ptrace restrictions)";
	}
	if (fd >= 0)
		close(fd);
	close(pidfd);
	if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != 1)
		return "process_vm_readv()";
	return NULL;
#endif
}

#ifdef SUP_ARCH
/* A small assembler: jumps are to labels, resolved at the end. */
enum { L_CHECK_MARK, L_FOREIGN, L_SENDTO, L_ALLOW, L_DENY_NET, L_NOSYS, L_X32,
    L_SOCKET, L_SOCKET_IP, L_NOFAMILY, L_NOPROTO, L_COUNT };
struct sup_prog {
	struct sock_filter f[SUP_FILTER_MAX];
	int label_of[SUP_FILTER_MAX];	/* jt/jf label per instruction, -1 none */
	int label_of_f[SUP_FILTER_MAX];
	int at[L_COUNT];		/* instruction index of each label */
	size_t n;
};


static void
sup_emit(struct sup_prog *p, uint16_t code, uint32_t k, int jt, int jf)
{
	if (p->n >= SUP_FILTER_MAX)
		return;
	p->f[p->n] = (struct sock_filter)BPF_STMT(code, k);
	p->label_of[p->n] = jt;
	p->label_of_f[p->n] = jf;
	p->n++;
}

static void
sup_label(struct sup_prog *p, int label)
{
	p->at[label] = (int)p->n;
}

/* -1 for "next instruction". */
static bool
sup_link(struct sup_prog *p)
{
	size_t i;
	int d;

	if (p->n >= SUP_FILTER_MAX)
		return false;
	for (i = 0; i < p->n; i++) {
		if (p->label_of[i] >= 0) {
			d = p->at[p->label_of[i]] - (int)i - 1;
			if (d < 0 || d > 255)
				return false;
			p->f[i].jt = (uint8_t)d;
		}
		if (p->label_of_f[i] >= 0) {
			d = p->at[p->label_of_f[i]] - (int)i - 1;
			if (d < 0 || d > 255)
				return false;
			p->f[i].jf = (uint8_t)d;
		}
	}
	return true;
}

static void
sup_build(struct sup_prog *p, bool iouring_allow)
{
	size_t i;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < SUP_FILTER_MAX; i++)
		p->label_of[i] = p->label_of_f[i] = -1;
	sup_emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), -1, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SUP_ARCH, -1, L_FOREIGN);
	sup_emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), -1, -1);
#ifdef SUP_X32_BIT
	sup_emit(p, BPF_JMP | BPF_JSET | BPF_K, SUP_X32_BIT, L_X32, -1);
#endif
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SYS_connect, L_CHECK_MARK, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SYS_getpeername, L_CHECK_MARK, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SYS_sendmsg, L_CHECK_MARK, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SYS_sendmmsg, L_CHECK_MARK, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SYS_sendto, L_SENDTO, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SYS_recvfrom, L_SENDTO, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, L_SOCKET, -1);
	if (!iouring_allow)
		sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, L_NOSYS, -1);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, -1, -1);

	/* sendto(fd, buf, len, flags, NULL, 0): no destination to check;
	 * recvfrom(..., NULL, NULL): no source to show (supervisor.c). */
	sup_label(p, L_SENDTO);
	sup_emit(p, BPF_LD | BPF_W | BPF_ABS, SUP_ARG_LO(4), -1, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, -1, L_CHECK_MARK);
	sup_emit(p, BPF_LD | BPF_W | BPF_ABS, SUP_ARG_HI(4), -1, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, 0, L_ALLOW, -1);

	sup_label(p, L_CHECK_MARK);
	sup_emit(p, BPF_LD | BPF_W | BPF_ABS, SUP_ARG_HI(0), -1, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SUP_MARK_HI, L_ALLOW, -1);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF, -1, -1);

	sup_label(p, L_ALLOW);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, -1, -1);

	sup_label(p, L_NOSYS);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS, -1, -1);

	/* Sockets that carry IP but are no TCP or UDP the policy knows: SMC
	 * (falls back to TCP, around us), RDS, packet sockets, SCTP (it
	 * associates on a send). Created nowhere in the tree. */
	sup_label(p, L_SOCKET);
	sup_emit(p, BPF_LD | BPF_W | BPF_ABS, SUP_ARG_LO(0), -1, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SUP_AF_SMC, L_NOFAMILY, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, AF_RDS, L_NOFAMILY, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, AF_PACKET, L_NOFAMILY, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, AF_INET, L_SOCKET_IP, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, L_SOCKET_IP, -1);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, -1, -1);
	sup_label(p, L_SOCKET_IP);
	sup_emit(p, BPF_LD | BPF_W | BPF_ABS, SUP_ARG_LO(2), -1, -1);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_SCTP, L_NOPROTO, -1);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, -1, -1);
	sup_label(p, L_NOFAMILY);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT, -1, -1);
	sup_label(p, L_NOPROTO);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPROTONOSUPPORT, -1, -1);

#ifdef SUP_X32_BIT
	sup_label(p, L_X32);
	sup_emit(p, BPF_ALU | BPF_AND | BPF_K, ~SUP_X32_BIT, -1, -1);
	for (i = 0; i < sizeof(sup_x32_nrs) / sizeof(sup_x32_nrs[0]); i++)
		sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, sup_x32_nrs[i], L_DENY_NET, -1);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, -1, -1);
#endif

	/* Another ABI of this kernel: its socket calls fail closed. Any other
	 * architecture value cannot occur here; it is refused all the same. */
	sup_label(p, L_FOREIGN);
	sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, SUP_FOREIGN_ARCH, -1, L_DENY_NET);
	sup_emit(p, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), -1, -1);
	for (i = 0; i < sizeof(sup_foreign_nrs) / sizeof(sup_foreign_nrs[0]); i++)
		sup_emit(p, BPF_JMP | BPF_JEQ | BPF_K, sup_foreign_nrs[i], L_DENY_NET, -1);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, -1, -1);

	sup_label(p, L_DENY_NET);
	sup_emit(p, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM, -1, -1);
}
#endif

/* The child's report: one int (0 or an errno), with the listener when 0. */
static int
sup_send_report(int sock, int err, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { &err, sizeof(err) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	/* Marked: the filter may already watch this process. */
	return syscall(SYS_sendmsg, (long)((uint64_t)SUP_MARK_HI << 32 | (uint32_t)sock),
	    &m, MSG_NOSIGNAL) == (long)sizeof(err) ? 0 : -errno;
}

int
sup_install(int sock, bool iouring_allow)
{
#ifndef SUP_ARCH
	(void)iouring_allow;
	(void)sup_send_report(sock, ENOSYS, -1);
	return -ENOSYS;
#else
	static struct sup_prog p;
	struct sock_fprog prog;
	int listener, err;

	sup_build(&p, iouring_allow);
	if (!sup_link(&p)) {
		(void)sup_send_report(sock, EOVERFLOW, -1);
		return -EOVERFLOW;
	}
	prog.len = (unsigned short)p.n;
	prog.filter = p.f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		err = errno;
		(void)sup_send_report(sock, err, -1);
		return -err;
	}
	/* WAIT_KILLABLE_RECV (Linux 5.19): once we hold a call, only a fatal
	 * signal ends its wait. Otherwise a handled signal during a handshake
	 * ends the connect() with EINTR, and a program that then polls for
	 * writability (Python does) would write into a tunnel not yet made;
	 * its handler now runs when the call returns (SOCKSIFY_TIMEOUT at
	 * most). Older kernels: restarts join the job (supervisor.c). */
	listener = (int)sup_seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER |
	    SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
	if (listener < 0 && errno == EINVAL)
		listener = (int)sup_seccomp(SECCOMP_SET_MODE_FILTER,
		    SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (listener < 0) {
		err = errno;
		(void)sup_send_report(sock, err, -1);
		return -err;
	}
	err = sup_send_report(sock, 0, listener);
	close(listener);
	return err;
#endif
}

int
sup_receive_listener(int sock)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	int err = EPROTO, fd = -1;
	struct iovec iov = { &err, sizeof(err) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
	    .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;

	do
		n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (n != (ssize_t)sizeof(err) || err != 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		return -(n == (ssize_t)sizeof(err) && err != 0 ? err : EPROTO);
	}
	return fd;
}
