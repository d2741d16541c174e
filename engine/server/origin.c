/* The origin check ComfyUI applies to every request unless --enable-cors-header is given:
 * when both Host and Origin are present and the host is a loopback address, their host
 * names (and ports, when the Origin names one) must match, else 403. It stops a web page
 * from another site driving a local server through the visitor's browser. Newer ComfyUI
 * also refuses "Sec-Fetch-Site: cross-site"; so does kiln.
 *
 * ComfyUI resolves a host name to decide whether it is loopback, which would block the
 * loop; kiln treats a name as loopback when it is "localhost" (or *.localhost), a
 * loopback IP literal, or when the connection itself arrived on a loopback address. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "server/server_int.h"

typedef struct hostport {
    char host[256];   /* lowercase, IPv6 brackets removed */
    char port[16];    /* "" when absent */
} hostport_t;

/* Splits "host[:port]" or "[v6]:port" (already lowercase) like Python's urlsplit. */
static void split(const char *s, size_t n, hostport_t *hp)
{
    hp->host[0] = hp->port[0] = 0;
    const char *end = s + n, *colon = NULL;
    if (n && s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            return;
        size_t h = (size_t)(rb - s - 1);
        if (h < sizeof hp->host) {
            memcpy(hp->host, s + 1, h);
            hp->host[h] = 0;
        }
        if (rb + 1 < end && rb[1] == ':')
            colon = rb + 1;
    } else {
        colon = memrchr(s, ':', n);
        size_t h = colon ? (size_t)(colon - s) : n;
        if (h < sizeof hp->host) {
            memcpy(hp->host, s, h);
            hp->host[h] = 0;
        }
    }
    if (colon) {
        size_t p = (size_t)(end - colon - 1);
        if (p < sizeof hp->port) {
            memcpy(hp->port, colon + 1, p);
            hp->port[p] = 0;
        }
    }
}

static bool ip_literal_loopback(const char *host, bool *is_ip)
{
    struct in_addr a4;
    struct in6_addr a6;
    *is_ip = true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    *is_ip = false;
    return false;
}

static bool local_is_loopback(struct lws *wsi)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static bool is_loopback(struct lws *wsi, const char *host)
{
    if (!*host)
        return false;
    bool is_ip;
    bool lo = ip_literal_loopback(host, &is_ip);
    if (is_ip)
        return lo;
    size_t n = strlen(host);
    if (!strcmp(host, "localhost") || (n > 10 && !strcmp(host + n - 10, ".localhost")))
        return true;
    return local_is_loopback(wsi);
}

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* "host[:port]" as compared: without the port when the other side has none. */
static void compare_form(const hostport_t *hp, bool keep_port, char *out, size_t n)
{
    if (keep_port && hp->port[0])
        snprintf(out, n, "%s:%s", hp->host, hp->port);
    else
        snprintf(out, n, "%s", hp->host);
}

int kiln__origin_check(kiln__srv_t *srv, struct lws *wsi)
{
    if (srv->cfg.cors_origin)
        return 0;
    char site[32] = "";
    if (lws_hdr_custom_copy(wsi, site, sizeof site, "sec-fetch-site:", 15) > 0) {
        lower(site);
        if (!strcmp(site, "cross-site"))
            return 403;
    }
    char host[300] = "", origin[600] = "";
    if (lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) <= 0 ||
        lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) <= 0)
        return 0;
    lower(host);
    lower(origin);
    /* The origin's netloc: what follows "scheme://" up to the next '/'. */
    const char *net = strstr(origin, "//");
    net = net ? net + 2 : origin + strlen(origin);
    size_t net_len = strcspn(net, "/?#");
    hostport_t h, o;
    split(host, strlen(host), &h);
    split(net, net_len, &o);
    if (!is_loopback(wsi, h.host))
        return 0;
    char hs[300], os[300];
    compare_form(&h, o.port[0] != 0, hs, sizeof hs);
    compare_form(&o, h.port[0] != 0, os, sizeof os);
    if (!hs[0] || !os[0])
        return 0;
    return strcmp(hs, os) ? 403 : 0;
}
