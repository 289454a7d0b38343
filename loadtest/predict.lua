-- wrk script: POST the example user to /predict.
-- wrk -t2 -c32 -d20s --latency -s loadtest/predict.lua http://127.0.0.1:8000
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"country": "es", "country_region": "Madrid", "source": "Organic", ' ..
  '"platform": "iOS", "device_family": "Apple iPhone", "os_version": "14.4", ' ..
  '"event_1": 100, "event_2": 50, "event_3": 10.0}'
wrk.path = "/predict"

function done(summary, latency, requests)
  io.write(string.format("errors: connect %d, read %d, write %d, status %d, timeout %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
