-- wrk script for perf/xcap-bench: every request PUTs the same XCAP document (whole-document
-- replace, 200 OK each time after the first). The body is read once from the file named by
-- $XCAP_BENCH_DOC; the Content-Type from $XCAP_BENCH_MIME.
local path = os.getenv("XCAP_BENCH_DOC")
assert(path, "set XCAP_BENCH_DOC to the document file")
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "PUT"
wrk.body = body
wrk.headers["Content-Type"] = os.getenv("XCAP_BENCH_MIME") or "application/resource-lists+xml"
-- No response() callback: it would make wrk parse every response in Lua. Failures show as
-- "Non-2xx or 3xx responses" in wrk's summary, which perf/xcap-bench reports.

