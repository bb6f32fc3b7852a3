/* Preloaded into snmpd by bench/snmp.sh: libwrap's hosts_ctl() admitting every client, so
 * snmpd no longer re-reads /etc/hosts.allow and /etc/hosts.deny for each request and its own
 * request path is measured. */
int hosts_ctl(char *daemon, char *name, char *addr, char *user) {
  (void)daemon; (void)name; (void)addr; (void)user; return 1;
}
