-- wrk script for bench/run.py: every request POSTs the file named by $BENCH_BODY with the
-- Content-Type $BENCH_TYPE. Other headers (the session cookie) come from wrk's -H.
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_TYPE") or "application/octet-stream"
