-- wrk: one single random range per request over keep-alive connections.
-- wrk -s bench/ranges.lua URL -- FILE_SIZE RANGE_LENGTH
local size, length = 0, 65536

function init(args)
  size = tonumber(args[1])
  length = tonumber(args[2] or "65536")
  -- a different sequence per thread: tostring({}) holds a per-thread address
  math.randomseed(os.time() + tonumber(string.match(tostring({}), "0x(%x+)") or "0", 16) % 100000)
end

function request()
  local start = math.random(0, size - length)
  local range = string.format("bytes=%d-%d", start, start + length - 1)
  return wrk.format("GET", nil, { ["Range"] = range })
end
