-- Cycles through pre-generated requests: one line per request in the file
-- named by BENCH_BODIES, "<header value>\t<body>". Each wrk thread takes its
-- own slice, so no two requests share a provider message id.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("BENCH_BODIES")
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  header_name = os.getenv("BENCH_HEADER") or "X-Hub-Signature-256"
  extra_name = os.getenv("BENCH_EXTRA_NAME")
  extra_value = os.getenv("BENCH_EXTRA_VALUE")
  items = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == (tid - 1) then
      local tab = string.find(line, "\t", 1, true)
      table.insert(items, {string.sub(line, 1, tab - 1), string.sub(line, tab + 1)})
    end
    i = i + 1
  end
  if #items == 0 then  -- fewer lines than threads: every thread takes them all
    for line in io.lines(path) do
      local tab = string.find(line, "\t", 1, true)
      table.insert(items, {string.sub(line, 1, tab - 1), string.sub(line, tab + 1)})
    end
  end
  index = 0
end

function request()
  index = index + 1
  local item = items[((index - 1) % #items) + 1]
  local headers = {["Content-Type"] = "application/json"}
  headers[header_name] = item[1]
  if extra_name then headers[extra_name] = extra_value end
  return wrk.format("POST", nil, headers, item[2])
end
