-- wrk script for the upload64k scenario: every request POSTs the same 64 KiB body.
-- wrk adds the Content-Length header for wrk.body.
wrk.method = "POST"
wrk.body = string.rep("u", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
