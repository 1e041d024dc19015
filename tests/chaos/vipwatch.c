/* raftpg_chaos_vipwatch: who holds the write VIP, polled for the chaos tests (I3, DESIGN.md §4).
 * Run as root in the root namespace; every INTERVAL_MS it
 *   - dumps the IPv4 addresses of each node namespace over a netlink socket opened inside it
 *     (ownership: the nodes that have the VIP on an interface), and
 *   - sends one ARP request for the VIP from the client namespace and collects every answer for
 *     ARP_WAIT_MS (the nodes the client can reach that answer for it),
 * and prints one line per poll:
 *
 *     MS addr=NAMES arp=NAMES
 *
 * MS is CLOCK_MONOTONIC in milliseconds at the start of the poll (the ARP answers arrive within
 * ARP_WAIT_MS after it), NAMES a comma-separated list of node names ("-" for none); an ARP
 * answer from a MAC that is no node's is printed as the MAC. It starts with "# NAME mac=MAC" for
 * each node.
 *
 *     raftpg_chaos_vipwatch [-i INTERVAL_MS] [-w ARP_WAIT_MS] [-d DURATION_S]
 *                           VIP IFNAME CLIENT_NETNS NAME=NETNS...
 *
 * A NETNS without a slash is looked for in /run/netns (ip netns). Runs until SIGTERM or SIGINT,
 * or DURATION_S (default 600) at the latest; exits 0, or 1 when it cannot start. Sockets keep
 * the namespace they were created in, so the process enters each namespace only at start. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/if_ether.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NODES_MAX 8

struct node {
    char name[32];
    int nl; /* NETLINK_ROUTE socket inside the node's namespace */
    unsigned char mac[6];
};

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
    if (ms <= 0) {
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000.0),
                          .tv_nsec = (long)((ms - (double)(time_t)(ms / 1000.0) * 1000.0) * 1e6)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !g_stop) {
    }
}

static int enter_netns(const char *ns)
{
    char path[256];
    if (strchr(ns, '/') != NULL) {
        snprintf(path, sizeof path, "%s", ns);
    } else {
        snprintf(path, sizeof path, "/run/netns/%s", ns);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "raftpg_chaos_vipwatch: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rv = setns(fd, CLONE_NEWNET);
    if (rv != 0) {
        fprintf(stderr, "raftpg_chaos_vipwatch: setns %s: %s\n", path, strerror(errno));
    }
    close(fd);
    return rv;
}

/* The MAC and IPv4 address of IFNAME in the current namespace. */
static int if_info(const char *ifname, unsigned char mac[6], struct in_addr *addr)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    int rv = ioctl(fd, SIOCGIFHWADDR, &ifr);
    if (rv == 0) {
        memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    }
    if (rv == 0 && addr != NULL) {
        memset(&ifr, 0, sizeof ifr);
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
        ifr.ifr_addr.sa_family = AF_INET;
        rv = ioctl(fd, SIOCGIFADDR, &ifr);
        if (rv == 0) {
            *addr = ((struct sockaddr_in *)(void *)&ifr.ifr_addr)->sin_addr;
        }
    }
    close(fd);
    return rv;
}

static void fmt_mac(const unsigned char *m, char *buf, size_t size)
{
    snprintf(buf, size, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* 1 when the namespace behind nl has vip on some interface, 0 when not, -1 when the dump failed. */
static int holds_vip(int nl, struct in_addr vip)
{
    static unsigned seq;
    struct {
        struct nlmsghdr nh;
        struct ifaddrmsg ifa;
    } req;
    memset(&req, 0, sizeof req);
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.ifa);
    req.nh.nlmsg_type = RTM_GETADDR;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nh.nlmsg_seq = ++seq;
    req.ifa.ifa_family = AF_INET;
    if (send(nl, &req, req.nh.nlmsg_len, 0) < 0) {
        return -1;
    }
    int found = 0;
    for (;;) {
        static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
        ssize_t len = recv(nl, buf, sizeof buf, 0);
        if (len < 0) {
            return -1;
        }
        for (struct nlmsghdr *nh = (struct nlmsghdr *)(void *)buf; NLMSG_OK(nh, (size_t)len);
             nh = NLMSG_NEXT(nh, len)) {
            if (nh->nlmsg_seq != seq) {
                continue;
            }
            if (nh->nlmsg_type == NLMSG_DONE) {
                return found;
            }
            if (nh->nlmsg_type == NLMSG_ERROR) {
                return -1;
            }
            if (nh->nlmsg_type != RTM_NEWADDR) {
                continue;
            }
            struct ifaddrmsg *ifa = NLMSG_DATA(nh);
            int rtl = (int)IFA_PAYLOAD(nh);
            for (struct rtattr *rta = IFA_RTA(ifa); RTA_OK(rta, rtl); rta = RTA_NEXT(rta, rtl)) {
                if ((rta->rta_type == IFA_LOCAL || rta->rta_type == IFA_ADDRESS) &&
                    RTA_PAYLOAD(rta) == 4 && memcmp(RTA_DATA(rta), &vip, 4) == 0) {
                    found = 1;
                }
            }
        }
    }
}

/* Appends ",item" (or "item" to an empty list) when it fits; a list never grows past size - 1. */
static void list_add(char *list, size_t size, const char *item, const char *suffix)
{
    size_t used = strlen(list), len = strlen(item), slen = strlen(suffix);
    if (used + 1 + len + slen >= size) {
        return;
    }
    if (used > 0) {
        list[used++] = ',';
    }
    memcpy(list + used, item, len);
    memcpy(list + used + len, suffix, slen + 1);
}

static int usage(void)
{
    fprintf(stderr, "usage: raftpg_chaos_vipwatch [-i INTERVAL_MS] [-w ARP_WAIT_MS] "
                    "[-d DURATION_S] VIP IFNAME CLIENT_NETNS NAME=NETNS...\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct node nodes[NODES_MAX];
    unsigned n = 0;
    long interval_ms = 50, wait_ms = 25, duration_s = 600;
    int i = 1;

    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        char *end;
        long v = strtol(argv[i + 1], &end, 10);
        if (*end != '\0' || v <= 0 || v > 86400) {
            return usage();
        }
        if (strcmp(argv[i], "-i") == 0) {
            interval_ms = v;
        } else if (strcmp(argv[i], "-w") == 0) {
            wait_ms = v;
        } else if (strcmp(argv[i], "-d") == 0) {
            duration_s = v;
        } else {
            return usage();
        }
    }
    if (argc - i < 4) {
        return usage();
    }
    struct in_addr vip;
    if (inet_pton(AF_INET, argv[i], &vip) != 1) {
        return usage();
    }
    const char *ifname = argv[i + 1];
    const char *client_ns = argv[i + 2];

    int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (self < 0) {
        perror("raftpg_chaos_vipwatch: /proc/self/ns/net");
        return 1;
    }
    for (int k = i + 3; k < argc; k++) {
        const char *eq = strchr(argv[k], '=');
        if (eq == NULL || eq == argv[k] || (size_t)(eq - argv[k]) >= sizeof nodes[0].name ||
            n == NODES_MAX) {
            return usage();
        }
        struct node *nd = &nodes[n++];
        memcpy(nd->name, argv[k], (size_t)(eq - argv[k]));
        if (enter_netns(eq + 1) != 0) {
            return 1;
        }
        nd->nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (nd->nl < 0 || if_info(ifname, nd->mac, NULL) != 0) {
            fprintf(stderr, "raftpg_chaos_vipwatch: %s: netlink socket or %s: %s\n", nd->name,
                    ifname, strerror(errno));
            return 1;
        }
        struct timeval tv = {.tv_sec = 1};
        setsockopt(nd->nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }

    /* The ARP side, in the client's namespace. */
    if (enter_netns(client_ns) != 0) {
        return 1;
    }
    unsigned char cmac[6];
    struct in_addr cip;
    unsigned ifindex = if_nametoindex(ifname);
    int pk = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ARP));
    if (ifindex == 0 || pk < 0 || if_info(ifname, cmac, &cip) != 0) {
        fprintf(stderr, "raftpg_chaos_vipwatch: client %s: %s\n", ifname, strerror(errno));
        return 1;
    }
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ARP);
    sll.sll_ifindex = (int)ifindex;
    if (bind(pk, (struct sockaddr *)&sll, sizeof sll) != 0) {
        perror("raftpg_chaos_vipwatch: bind");
        return 1;
    }
    if (setns(self, CLONE_NEWNET) != 0) {
        perror("raftpg_chaos_vipwatch: setns back");
        return 1;
    }
    close(self);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    for (unsigned k = 0; k < n; k++) {
        char m[18];
        fmt_mac(nodes[k].mac, m, sizeof m);
        printf("# %s mac=%s\n", nodes[k].name, m);
    }
    fflush(stdout);

    struct ether_arp req;
    memset(&req, 0, sizeof req);
    req.arp_hrd = htons(ARPHRD_ETHER);
    req.arp_pro = htons(ETH_P_IP);
    req.arp_hln = 6;
    req.arp_pln = 4;
    req.arp_op = htons(ARPOP_REQUEST);
    memcpy(req.arp_sha, cmac, 6);
    memcpy(req.arp_spa, &cip, 4);
    memcpy(req.arp_tpa, &vip, 4);
    struct sockaddr_ll to = sll;
    to.sll_halen = 6;
    memset(to.sll_addr, 0xff, 6);

    double end = now_ms() + (double)duration_s * 1000.0;
    while (!g_stop && now_ms() < end) {
        double t0 = now_ms();
        char addr[256] = "", arp[512] = "";
        for (unsigned k = 0; k < n; k++) {
            int h = holds_vip(nodes[k].nl, vip);
            if (h != 0) {
                list_add(addr, sizeof addr, nodes[k].name, h < 0 ? "?" : "");
            }
        }
        /* Drain what arrived since the last poll, then ask. */
        char junk[256];
        while (recv(pk, junk, sizeof junk, 0) > 0) {
        }
        unsigned char seen[NODES_MAX * 2][6];
        unsigned n_seen = 0;
        if (sendto(pk, &req, sizeof req, 0, (struct sockaddr *)&to, sizeof to) < 0) {
            list_add(arp, sizeof arp, "error:", strerror(errno));
        }
        for (double left = (double)wait_ms; left > 0; left = t0 + (double)wait_ms - now_ms()) {
            struct pollfd pfd = {.fd = pk, .events = POLLIN};
            if (poll(&pfd, 1, (int)left + 1) <= 0) {
                continue;
            }
            struct ether_arp rep;
            ssize_t len;
            while ((len = recv(pk, &rep, sizeof rep, 0)) >= (ssize_t)sizeof rep) {
                if (ntohs(rep.arp_op) != ARPOP_REPLY || memcmp(rep.arp_spa, &vip, 4) != 0) {
                    continue;
                }
                bool dup = false;
                for (unsigned s = 0; s < n_seen; s++) {
                    dup = dup || memcmp(seen[s], rep.arp_sha, 6) == 0;
                }
                if (dup || n_seen == sizeof seen / sizeof seen[0]) {
                    continue;
                }
                memcpy(seen[n_seen++], rep.arp_sha, 6);
                const char *who = NULL;
                for (unsigned k = 0; k < n; k++) {
                    if (memcmp(nodes[k].mac, rep.arp_sha, 6) == 0) {
                        who = nodes[k].name;
                    }
                }
                char m[18];
                fmt_mac(rep.arp_sha, m, sizeof m);
                list_add(arp, sizeof arp, who != NULL ? who : m, "");
            }
        }
        printf("%.3f addr=%s arp=%s\n", t0, addr[0] ? addr : "-", arp[0] ? arp : "-");
        fflush(stdout);
        sleep_ms(t0 + (double)interval_ms - now_ms());
    }
    return 0;
}
