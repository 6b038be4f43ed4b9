/* An open-loop HTTP/1.1 load generator for bench/serve.py, in C so that it costs the 2-core
 * machine a few microseconds per request rather than the service's own budget.
 *
 *     loadgen PORT RATE REQUESTS_FILE MAX_CONNECTIONS TIMEOUT_SECONDS
 *
 * REQUESTS_FILE holds complete requests (bytes), each preceded by its length as a 4-byte
 * little-endian unsigned integer. Request i is due at t0 + i / RATE, whatever happened to the
 * earlier ones (open loop): it is sent at once on an idle keep-alive connection to
 * 127.0.0.1:PORT, on a new connection while fewer than MAX_CONNECTIONS are open, or else as
 * soon as a connection frees up. Its latency is counted from the time it was due, so a server
 * that stalls cannot hide its queueing ("coordinated omission"), and a generator that sends
 * late is counted against the service, not in its favour.
 *
 * Prints one line per request on stdout, in request order:
 *     <status> <latency_ns> <lag_ns>
 * status is the HTTP status, or 0 when the request failed (connection error, timeout, bad
 * response); latency is from due time to the response's last byte; lag is from due time to the
 * send (the generator's own lateness). The last line is "elapsed <ns>": first due time to last
 * response.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define READ_BUF 65536

typedef struct {
    int fd;
    int busy;          /* a request is in flight */
    long req;          /* its index */
    size_t sent;       /* bytes of it written so far */
    int resent;        /* sent again on a fresh connection after the server closed one */
    char *buf;         /* response bytes read so far */
    size_t len;
} conn_t;

static int port;
static char **req_data;
static uint32_t *req_len;
static long n_req;
static int64_t *due, *done_at, *sent_at;
static int *status;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int open_conn(int epfd, conn_t *c) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { close(fd); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    c->fd = fd;
    c->len = 0;
    return 0;
}

static void close_conn(int epfd, conn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->len = 0;
}

/* Write what is left of the connection's request; -1 on error. */
static int push(conn_t *c) {
    while (c->sent < req_len[c->req]) {
        ssize_t w = write(c->fd, req_data[c->req] + c->sent, req_len[c->req] - c->sent);
        if (w < 0) {
            if (errno == EAGAIN) return 0;  /* loopback buffers are large: rare, retried on read */
            return -1;
        }
        c->sent += (size_t)w;
    }
    return 0;
}

static int start(conn_t *c, long i) {
    c->busy = 1;
    c->req = i;
    c->sent = 0;
    c->resent = 0;
    c->len = 0;
    sent_at[i] = now_ns();
    return push(c);
}

/* Is a whole response in the buffer? Returns its length, 0 if not yet, -1 if malformed;
 * sets *code and *keep. */
static long parse(conn_t *c, int *code, int *keep) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end) return c->len > READ_BUF - 1 ? -1 : 0;
    size_t head = (size_t)(end - c->buf) + 4;
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0) return -1;
    *code = atoi(c->buf + 9);
    long length = 0;
    *keep = 1;
    for (char *line = memchr(c->buf, '\n', head) + 1; line < c->buf + head;
         line = memchr(line, '\n', (size_t)(c->buf + head - line)) + 1) {
        if (strncasecmp(line, "content-length:", 15) == 0) length = atol(line + 15);
        else if (strncasecmp(line, "connection:", 11) == 0) {
            char *v = line + 11;
            while (*v == ' ') v++;
            if (strncasecmp(v, "close", 5) == 0) *keep = 0;
        }
    }
    if (c->len < head + (size_t)length) return 0;
    return (long)(head + (size_t)length);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: loadgen PORT RATE REQUESTS_FILE MAX_CONNECTIONS TIMEOUT_SECONDS\n");
        return 2;
    }
    port = atoi(argv[1]);
    double rate = atof(argv[2]);
    int max_conn = atoi(argv[4]);
    int64_t timeout = (int64_t)(atof(argv[5]) * 1e9);

    FILE *f = fopen(argv[3], "rb");
    if (!f) { perror(argv[3]); return 2; }
    long cap = 1024;
    req_data = malloc(sizeof(char *) * cap);
    req_len = malloc(sizeof(uint32_t) * cap);
    uint32_t len;
    while (fread(&len, 4, 1, f) == 1) {
        if (n_req == cap) {
            cap *= 2;
            req_data = realloc(req_data, sizeof(char *) * cap);
            req_len = realloc(req_len, sizeof(uint32_t) * cap);
        }
        req_data[n_req] = malloc(len);
        if (fread(req_data[n_req], 1, len, f) != len) { fprintf(stderr, "truncated file\n"); return 2; }
        req_len[n_req++] = len;
    }
    fclose(f);
    due = calloc(n_req, sizeof(int64_t));
    done_at = calloc(n_req, sizeof(int64_t));
    sent_at = calloc(n_req, sizeof(int64_t));
    status = calloc(n_req, sizeof(int));

    int epfd = epoll_create1(0);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev);

    conn_t *conns = calloc(max_conn, sizeof(conn_t));
    int opened = 0;
    for (int k = 0; k < max_conn; k++) { conns[k].fd = -1; conns[k].buf = malloc(READ_BUF); }
    long *waiting = malloc(sizeof(long) * (n_req + 1));  /* due, not yet sent: FIFO */
    long w_head = 0, w_tail = 0;

    int64_t t0 = now_ns() + 50000000LL;
    for (long i = 0; i < n_req; i++) due[i] = t0 + (int64_t)((double)i * 1e9 / rate);
    long next = 0, finished = 0;
    struct epoll_event events[256];

    while (finished < n_req) {
        int64_t now = now_ns();
        /* what is due: onto a free connection, or into the queue */
        while (next < n_req && due[next] <= now) waiting[w_tail++] = next++;
        while (w_head < w_tail) {
            conn_t *c = NULL;
            for (int k = 0; k < opened; k++)
                if (!conns[k].busy && conns[k].fd >= 0) { c = &conns[k]; break; }
            if (!c) {
                for (int k = 0; k < opened; k++)
                    if (conns[k].fd < 0) { c = &conns[k]; break; }
                if (!c && opened < max_conn) c = &conns[opened++];
                if (c && c->fd < 0 && open_conn(epfd, c) < 0) {
                    long i = waiting[w_head++];
                    status[i] = 0; done_at[i] = now_ns(); sent_at[i] = done_at[i]; finished++;
                    continue;
                }
            }
            if (!c) break;
            long i = waiting[w_head++];
            if (start(c, i) < 0) {
                status[i] = 0; done_at[i] = now_ns(); finished++;
                c->busy = 0; close_conn(epfd, c);
            }
        }
        /* time out requests in flight too long */
        for (int k = 0; k < opened; k++) {
            conn_t *c = &conns[k];
            if (c->busy && now - due[c->req] > timeout) {
                status[c->req] = 0; done_at[c->req] = now; finished++;
                c->busy = 0; close_conn(epfd, c);
            }
        }
        if (finished >= n_req) break;
        if (next < n_req) {
            struct itimerspec its = {0};
            int64_t at = due[next];
            its.it_value.tv_sec = at / 1000000000LL;
            its.it_value.tv_nsec = at % 1000000000LL;
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(epfd, events, 256, next < n_req ? 1000 : 100);
        for (int e = 0; e < n; e++) {
            conn_t *c = events[e].data.ptr;
            if (c == NULL) { uint64_t x; while (read(tfd, &x, sizeof x) > 0) {} continue; }
            if (c->fd < 0) continue;
            for (;;) {
                ssize_t r = read(c->fd, c->buf + c->len, READ_BUF - c->len);
                if (r > 0) { c->len += (size_t)r; if (c->len < READ_BUF) continue; }
                if (r == 0 || (r < 0 && errno != EAGAIN)) {
                    /* closed: idle past the server's keep-alive timeout, or mid-request */
                    if (c->busy && c->len == 0 && !c->resent) {
                        long i = c->req;
                        close_conn(epfd, c);
                        if (open_conn(epfd, c) == 0) {
                            c->sent = 0; c->resent = 1;
                            if (push(c) == 0) { (void)i; break; }
                        }
                        status[i] = 0; done_at[i] = now_ns(); finished++;
                        c->busy = 0; close_conn(epfd, c);
                        break;
                    }
                    if (c->busy) {
                        status[c->req] = 0; done_at[c->req] = now_ns(); finished++;
                        c->busy = 0;
                    }
                    close_conn(epfd, c);
                    break;
                }
                break;  /* EAGAIN */
            }
            if (c->fd < 0 || !c->busy) { if (c->fd >= 0 && c->len) c->len = 0; continue; }
            push(c);
            int code = 0, keep = 1;
            long used = parse(c, &code, &keep);
            if (used == 0) continue;
            long i = c->req;
            done_at[i] = now_ns();
            status[i] = used < 0 ? 0 : code;
            finished++;
            c->busy = 0;
            if (used < 0 || !keep) { close_conn(epfd, c); continue; }
            memmove(c->buf, c->buf + used, c->len - (size_t)used);
            c->len -= (size_t)used;
            if (w_head < w_tail) {
                long j = waiting[w_head++];
                if (start(c, j) < 0) {
                    status[j] = 0; done_at[j] = now_ns(); finished++;
                    c->busy = 0; close_conn(epfd, c);
                }
            }
        }
    }
    int64_t last = 0;
    for (long i = 0; i < n_req; i++) {
        if (done_at[i] > last) last = done_at[i];
        printf("%d %lld %lld\n", status[i], (long long)(done_at[i] - due[i]),
               (long long)(sent_at[i] - due[i]));
    }
    printf("elapsed %lld\n", (long long)(last - t0));
    for (int k = 0; k < opened; k++) close_conn(epfd, &conns[k]);
    return 0;
}
