-- bench/ranges.lua: video seeking: GETs of /big.bin with a random 64 KiB Range each,
-- within SIZE bytes (from the environment); each wrk thread draws its own sequence.
local size = tonumber(os.getenv("SIZE"))
local span = 65536
local threads = 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init() math.randomseed(1000 + id) end
function request()
  local first = math.random(0, size - span)
  return wrk.format("GET", "/big.bin", { Range = "bytes=" .. first .. "-" .. (first + span - 1) })
end
