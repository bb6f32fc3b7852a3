/* The simplest copying HTTP server, a reference beside the caches in peers.sh's 10 MiB test:
 * every request on a keep-alive connection gets the same 10 MiB body from memory through one
 * blocking writev loop; a thread per connection, no parsing beyond the end of the head.
 *   cc -O2 -pthread -o null-http bench/ref/null-http.c && ./null-http 19094
 *   peers.sh --tests 10m --target null-http=127.0.0.1:19094 ...  (its warm check fails: no cache) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#define BODY (10 * 1024 * 1024)
static char *body;
static char head[256];
static size_t head_len;
static void *serve(void *arg) {
  int c = (int)(long)arg;
  char req[8192];
  size_t have = 0;
  for (;;) {
    ssize_t n = read(c, req + have, sizeof req - have);
    if (n <= 0) break;
    have += n;
    char *end;
    while ((end = memmem(req, have, "\r\n\r\n", 4))) {
      size_t used = end + 4 - req;
      struct iovec iov[2] = {{head, head_len}, {body, BODY}};
      int cnt = 2;
      struct iovec *v = iov;
      while (cnt) {
        ssize_t w = writev(c, v, cnt);
        if (w <= 0) goto done;
        while (cnt && (size_t)w >= v->iov_len) { w -= v->iov_len; v++; cnt--; }
        if (cnt) { v->iov_base = (char *)v->iov_base + w; v->iov_len -= w; }
      }
      memmove(req, req + used, have - used);
      have -= used;
    }
  }
done:
  close(c);
  return NULL;
}
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  body = malloc(BODY);
  for (size_t i = 0; i < BODY; i++) body[i] = (char)(i * 131);
  head_len = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", BODY);
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 128)) { perror("bind"); return 1; }
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    pthread_t t;
    pthread_create(&t, NULL, serve, (void *)(long)c);
    pthread_detach(t);
  }
}
