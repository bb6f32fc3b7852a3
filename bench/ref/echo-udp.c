/* The null SNMP agent of bench/snmp.sh: every datagram sent straight back (blocking recvfrom
 * and sendto, no SNMP work), the floor for an agent that answers each request with a datagram.
 *   echo-udp PORT     (listens on 127.0.0.1) */
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
int main(int argc, char **argv) {
  if (argc < 2) return 2;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(s, (struct sockaddr *)&a, sizeof a)) return 1;
  static char buf[65536];
  for (;;) {
    struct sockaddr_in p; socklen_t pl = sizeof p;
    ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&p, &pl);
    if (n > 0) sendto(s, buf, n, 0, (struct sockaddr *)&p, pl);
  }
}
