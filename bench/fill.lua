-- bench/fill.lua: wrk requests for /1k.bin?i=0..OBJECTS-1 (OBJECTS from the environment),
-- each thread walking its own slice, so a fill caches every object once.
local objects = tonumber(os.getenv("OBJECTS"))
local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init() n = 0 end
function request()
  local i = id + n * 2
  n = n + 1
  return wrk.format("GET", "/1k.bin?i=" .. (i % objects))
end
