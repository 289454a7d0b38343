-- wrk script: POST 1,000 users to /batch_predict.
-- wrk -t2 -c4 -d20s --latency -s loadtest/batch.lua http://127.0.0.1:8000
local user = '{"country": "es", "country_region": "Madrid", "source": "Organic", ' ..
  '"platform": "iOS", "device_family": "Apple iPhone", "os_version": "14.4", ' ..
  '"event_1": 100, "event_2": 50, "event_3": 10.0}'
local users = {}
for i = 1, 1000 do users[i] = user end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"users": [' .. table.concat(users, ",") .. ']}'
wrk.path = "/batch_predict"
