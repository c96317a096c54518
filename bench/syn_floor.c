/* The kernel floor of a SYN scan of every TCP port of one host (bench/scan-syn.sh case a):
 * the least wall time in which this machine sends 65,535 SYNs and reads every answer back,
 * with no scanner logic at all. THREADS sender threads each send on an IPPROTO_RAW socket
 * with sendmmsg (64 packets a call, IPv4 header written here, as Portolan's -sS does); one
 * thread reads answers (raw TCP socket, kernel filter on our source port, recvmmsg) and
 * counts them. On a veth the target namespace's whole answer (route, TCP lookup, reset)
 * runs in the sender's softirq, so this is what the two namespaces' kernels cost together.
 *
 *   syn_floor DST [THREADS]      (IPv4 only; prints "seconds answers")
 * Exit 1 if not every port answered within 5 s. Sends only to DST, which the caller chooses
 * (the bench passes a lab address in 198.18.0.0/15). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PORTS 65535
#define BATCH 64

static struct in_addr src, dst;
static uint16_t sport;
static atomic_int answers;
static int rfd;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static uint32_t sum16(const uint8_t *p, int n, uint32_t s) {
  for (int i = 0; i + 1 < n; i += 2) s += (uint32_t)(p[i] << 8 | p[i + 1]);
  return s;
}

static uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

/* IPv4 header (the kernel fills length, id and checksum) and a 20-byte SYN to `port`. */
static void syn(uint8_t *p, int port) {
  memset(p, 0, 40);
  p[0] = 0x45; p[6] = 0x40; p[8] = 64; p[9] = IPPROTO_TCP;
  memcpy(p + 12, &src, 4); memcpy(p + 16, &dst, 4);
  uint8_t *t = p + 20;
  t[0] = sport >> 8; t[1] = sport & 0xff; t[2] = port >> 8; t[3] = port & 0xff;
  uint32_t seq = (uint32_t)port * 2654435761u;
  t[4] = seq >> 24; t[5] = seq >> 16; t[6] = seq >> 8; t[7] = seq;
  t[12] = 5 << 4; t[13] = 0x02; t[14] = 0x04; /* window 1024 */
  uint8_t pseudo[12];
  memcpy(pseudo, &src, 4); memcpy(pseudo + 4, &dst, 4);
  pseudo[8] = 0; pseudo[9] = IPPROTO_TCP; pseudo[10] = 0; pseudo[11] = 20;
  uint16_t c = fold(sum16(t, 20, sum16(pseudo, 12, 0)));
  t[16] = c >> 8; t[17] = c & 0xff;
}

struct range { int lo, hi; };

static void *sender(void *arg) {
  struct range *r = arg;
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) { perror("socket"); exit(2); }
  static __thread uint8_t pkts[BATCH][40];
  struct mmsghdr m[BATCH];
  struct iovec io[BATCH];
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = dst };
  for (int port = r->lo; port <= r->hi;) {
    int n = 0;
    for (; n < BATCH && port <= r->hi; n++, port++) {
      syn(pkts[n], port);
      io[n] = (struct iovec){ pkts[n], 40 };
      memset(&m[n], 0, sizeof m[n]);
      m[n].msg_hdr.msg_iov = &io[n]; m[n].msg_hdr.msg_iovlen = 1;
      m[n].msg_hdr.msg_name = &to; m[n].msg_hdr.msg_namelen = sizeof to;
    }
    for (int k = 0; k < n;) {
      int s = sendmmsg(fd, m + k, n - k, 0);
      if (s > 0) k += s; else k++; /* a lost packet stays lost: the count shows it */
    }
  }
  close(fd);
  return 0;
}

static void *receiver(void *arg) {
  (void)arg;
  static uint8_t b[BATCH][128];
  struct mmsghdr m[BATCH];
  struct iovec io[BATCH];
  for (int i = 0; i < BATCH; i++) {
    io[i] = (struct iovec){ b[i], sizeof b[i] };
    memset(&m[i], 0, sizeof m[i]);
    m[i].msg_hdr.msg_iov = &io[i]; m[i].msg_hdr.msg_iovlen = 1;
  }
  /* reads without waiting, and naps 100 us when nothing is there: a reader woken for every
   * answer would cost the sending CPU a wake-up per packet, more than the packet itself */
  double end = now() + 5;
  struct timespec nap = { 0, 100000 };
  while (answers < PORTS && now() < end) {
    int n = recvmmsg(rfd, m, BATCH, MSG_DONTWAIT, 0);
    if (n > 0) answers += n;
    else nanosleep(&nap, 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || !inet_aton(argv[1], &dst)) { fprintf(stderr, "usage: syn_floor DST [THREADS]\n"); return 2; }
  /* network safety: lab (198.18.0.0/15) or loopback addresses only */
  uint32_t d = ntohl(dst.s_addr);
  if ((d & 0xFFFE0000u) != 0xC6120000u && (d >> 24) != 127) {
    fprintf(stderr, "syn_floor: %s is outside 198.18.0.0/15 and 127.0.0.0/8; refusing\n", argv[1]);
    return 2;
  }
  /* and only from the lab's scanner namespace (ptl-scan, or the one named by
   * SYN_FLOOR_NETNS): never from the machine's own network namespace, whose routes lead off
   * the machine */
  const char *ns = getenv("SYN_FLOOR_NETNS");
  char path[256];
  snprintf(path, sizeof path, "/run/netns/%s", ns && *ns && !strchr(ns, '/') ? ns : "ptl-scan");
  struct stat self_ns, lab_ns;
  if (stat("/proc/self/ns/net", &self_ns) != 0 || stat(path, &lab_ns) != 0 ||
      self_ns.st_ino != lab_ns.st_ino || self_ns.st_dev != lab_ns.st_dev) {
    fprintf(stderr, "syn_floor: run it inside the lab's scanner namespace (ip netns exec ptl-scan ...)\n");
    return 2;
  }
  int threads = argc > 2 ? atoi(argv[2]) : 2;
  if (threads < 1 || threads > 16) threads = 2;
  /* the source address towards DST, and a source port held by a bound socket */
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr = dst, .sin_port = htons(9) };
  socklen_t l = sizeof a;
  if (connect(u, (void *)&a, sizeof a) || getsockname(u, (void *)&a, &l)) { perror("route"); return 2; }
  src = a.sin_addr;
  int hold = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in any = { .sin_family = AF_INET };
  l = sizeof any;
  if (bind(hold, (void *)&any, sizeof any) || getsockname(hold, (void *)&any, &l)) { perror("bind"); return 2; }
  sport = ntohs(any.sin_port);
  rfd = socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
  if (rfd < 0) { perror("raw socket (needs root)"); return 2; }
  /* keep TCP segments to our port only: X = IP header length, A = destination port */
  struct sock_filter f[] = { { 0xb1, 0, 0, 0 }, { 0x48, 0, 0, 2 }, { 0x15, 0, 1, sport },
                             { 0x06, 0, 0, 0xffff }, { 0x06, 0, 0, 0 } };
  struct sock_fprog fp = { 5, f };
  int big = 8 << 20;
  setsockopt(rfd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp);
  setsockopt(rfd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
  uint8_t junk[64];
  while (recv(rfd, junk, sizeof junk, MSG_DONTWAIT) > 0) {}
  pthread_t rx, tx[16];
  struct range r[16];
  double t0 = now();
  pthread_create(&rx, 0, receiver, 0);
  for (int i = 0; i < threads; i++) {
    r[i].lo = 1 + i * PORTS / threads;
    r[i].hi = (i + 1) * PORTS / threads;
    pthread_create(&tx[i], 0, sender, &r[i]);
  }
  for (int i = 0; i < threads; i++) pthread_join(tx[i], 0);
  pthread_join(rx, 0);
  printf("%.4f %d\n", now() - t0, answers);
  return answers >= PORTS ? 0 : 1;
}
