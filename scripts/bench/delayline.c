/* delayline.c: hold every packet for a fixed time, then pass it on — a
 * stand-in for `tc netem delay` on kernels without sch_netem.
 *
 * Used by scripts/bench/netns.sh. It opens a TUN device in the network
 * namespace it starts in (the client side, where the route to the server
 * points at it) and a second TUN device inside the server's namespace.
 * Each IP packet the client's kernel routes into the first device is
 * stamped with its arrival time, queued in FIFO order, and written to the
 * second device DELAY_MS later, where the server's kernel receives it as if
 * it had come off a wire. Replies take the veth pair straight back, so the
 * whole round trip costs DELAY_MS once and the bulk data (server to client)
 * never leaves the kernel; only requests and ACKs pass through here.
 *
 * The queue is a fixed ring (no allocation after start); when it is full,
 * the arriving packet is dropped, as a router's tail-drop queue would.
 * The process ends on SIGTERM/SIGINT or after LIFETIME_S seconds (so a
 * forgotten one goes away by itself), and prints its counters.
 *
 * usage: delayline IN_TUN SERVER_NETNS_PATH OUT_TUN DELAY_MS [LIFETIME_S]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { SLOT_BYTES = 2048, RING_SLOTS = 1 << 15, BATCH = 128 };

struct slot {
	uint64_t due_ns;
	uint32_t len;
	unsigned char data[SLOT_BYTES];
};

static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* Creates TUN device NAME in the current network namespace, sets it up. */
static int open_tun(const char *name)
{
	struct ifreq req;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("/dev/net/tun");
	memset(&req, 0, sizeof req);
	req.ifr_flags = IFF_TUN | IFF_NO_PI;
	strncpy(req.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &req) < 0)
		die("TUNSETIFF");
	int ctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (ctl < 0)
		die("socket");
	if (ioctl(ctl, SIOCGIFFLAGS, &req) < 0)
		die("SIOCGIFFLAGS");
	req.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(ctl, SIOCSIFFLAGS, &req) < 0)
		die("SIOCSIFFLAGS");
	close(ctl);
	return fd;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr,
			"usage: %s IN_TUN SERVER_NETNS_PATH OUT_TUN DELAY_MS [LIFETIME_S]\n",
			argv[0]);
		return 2;
	}
	const uint64_t delay_ns = (uint64_t)(strtod(argv[4], NULL) * 1e6);
	const uint64_t lifetime_s = argc > 5 ? strtoull(argv[5], NULL, 10) :
					       4 * 3600;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int server_ns = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (home_ns < 0 || server_ns < 0)
		die("open netns");
	int in_fd = open_tun(argv[1]);
	if (setns(server_ns, CLONE_NEWNET) < 0)
		die("setns server");
	int out_fd = open_tun(argv[3]);
	if (setns(home_ns, CLONE_NEWNET) < 0)
		die("setns home");
	close(server_ns);
	close(home_ns);
	if (fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK) < 0)
		die("O_NONBLOCK");

	struct slot *ring = calloc(RING_SLOTS, sizeof *ring);
	if (!ring)
		die("calloc");
	uint32_t first = 0, used = 0; /* FIFO: oldest at ring[first] */
	uint64_t passed = 0, dropped = 0, errors = 0;
	const uint64_t end_ns = mono_ns() + lifetime_s * 1000000000u;

	fprintf(stderr, "delayline: %s -> %s (in %s), %.3f ms\n", argv[1],
		argv[3], argv[2], delay_ns / 1e6);

	while (!quit) {
		uint64_t now = mono_ns();
		if (now >= end_ns)
			break;
		/* Forward every packet whose time has come, oldest first. */
		while (used && ring[first].due_ns <= now) {
			struct slot *s = &ring[first];
			if (write(out_fd, s->data, s->len) < 0)
				errors++;
			else
				passed++;
			first = (first + 1) % RING_SLOTS;
			used--;
		}
		/* Sleep until the next packet is due or a new one arrives. */
		int timeout_ms = 500;
		if (used) {
			uint64_t wait = ring[first].due_ns - now;
			struct timespec ts = { .tv_sec = 0,
					       .tv_nsec = (long)(wait %
								 1000000000u) };
			ts.tv_sec = (time_t)(wait / 1000000000u);
			struct pollfd p = { .fd = in_fd, .events = POLLIN };
			if (ppoll(&p, 1, &ts, NULL) < 0 && errno != EINTR)
				die("ppoll");
			if (!(p.revents & POLLIN))
				continue;
		} else {
			struct pollfd p = { .fd = in_fd, .events = POLLIN };
			if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
				die("poll");
			if (!(p.revents & POLLIN))
				continue;
		}
		/* Take in what has arrived, up to BATCH packets a round. */
		for (int i = 0; i < BATCH; i++) {
			static unsigned char discard[SLOT_BYTES];
			struct slot *s =
				used < RING_SLOTS ?
					&ring[(first + used) % RING_SLOTS] :
					NULL;
			ssize_t n =
				read(in_fd, s ? s->data : discard, SLOT_BYTES);
			if (n <= 0)
				break;
			if (!s) {
				dropped++;
				continue;
			}
			s->len = (uint32_t)n;
			s->due_ns = mono_ns() + delay_ns;
			used++;
		}
	}
	fprintf(stderr,
		"delayline: done, passed %llu, dropped %llu, write errors %llu\n",
		(unsigned long long)passed, (unsigned long long)dropped,
		(unsigned long long)errors);
	return 0;
}
