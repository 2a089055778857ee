# Sourced by bench/smtp-intake.sh and bench/relay.sh: the private Postfix
# instance both run. Expects $WORK, $POSTFIX_CONF, $PF_PORT and the caller's
# die, port_free and start_rss_sampler; main.cf is the caller's (the two
# benchmarks route mail differently).

# Writes master.cf: smtpd on 127.0.0.1:$PF_PORT and the stock services,
# nothing chrooted.
postfix_master_cf() {
    cat >"$POSTFIX_CONF/master.cf" <<EOF2
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
proxywrite unix  - - n - 1 proxymap
smtp       unix  - - n - - smtp
relay      unix  - - n - - smtp
showq      unix  n - n - - showq
error      unix  - - n - - error
retry      unix  - - n - - error
discard    unix  - - n - - discard
local      unix  - n n - - local
virtual    unix  - n n - - virtual
lmtp       unix  - - n - - lmtp
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF2
}

# Checks and starts the instance, waits for its port, sets PF_MASTER and
# starts sampling the RSS of the master and its children.
postfix_start() {
    mkdir -p "$WORK/postfix-spool" "$WORK/postfix-data"
    chown postfix "$WORK/postfix-data"
    postfix -c "$POSTFIX_CONF" check >&2 || { cat "$WORK/postfix.log" >&2 2>/dev/null; die "postfix check failed"; }
    postfix -c "$POSTFIX_CONF" start >&2 || { cat "$WORK/postfix.log" >&2 2>/dev/null; die "postfix start failed"; }
    for _ in $(seq 100); do port_free "$PF_PORT" || break; sleep 0.1; done
    PF_MASTER=$(tr -d ' ' <"$WORK/postfix-spool/pid/master.pid")
    start_rss_sampler "echo $PF_MASTER; pgrep -P $PF_MASTER" "$WORK/postfix.rss"
}
