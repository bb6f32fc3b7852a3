vcl 4.1;
# Peer: Varnish with malloc storage (-s malloc,<size> on the command line).
# Tokens: 19500
# Default builtin VCL honours Cache-Control: max-age; we only add X-Cache for
# the harness's hit check.
backend origin {
    .host = "127.0.0.1";
    .port = "19500";
}
sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
}
