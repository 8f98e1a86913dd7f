#!lua name=ssehub_1
-- ssehub's Redis Function library (format version 1). Loaded by the broker
-- and every node with FUNCTION LOAD REPLACE; apps may FCALL it directly.
--
-- Stream entries: fields data, then the optional type, retry, mid, and
-- prev = the id of the entry that was last before this one (any entry,
-- trimmed or not). prev makes gap detection exact: a cursor older than the
-- prev of the first retained entry has lost events to trimming.
--
-- Live messages on P{topic}:l are netstrings "<len>:<bytes>," of the entry
-- id followed by field name/value pairs (see broker/envelope.h).
--
-- The topic's metadata hash P{topic}:m (same slot) holds, for brokers:
-- epoch = the highest leader epoch that wrote the topic (fencing), and
-- in = the highest ingest position stored ("M.n", see broker/ingest_pos.h);
-- and the publisher-id index: i:<mid> = the entry id of the newest event
-- published with that id (when the call names the metadata key), pruned
-- of entries that left the stream.
--
-- Mercure updates add the fields private = '1' (only subscribers whose
-- token allows one of the update's topics get it) and, for an update with
-- several topics (stored once in each topic's stream), topics = a JSON
-- array of all of them, canonical first.

-- On a Redis Cluster the live channel is a sharded channel (SPUBLISH: the
-- message stays inside the shard that owns the topic's slot); the loader
-- sets this line to 'SPUBLISH' there (functions_source in functions.c).
local LIVE_PUBLISH = 'PUBLISH'

local DEFAULT_MAXLEN = 1000
local DEFAULT_MAXAGE = 86400
local MAX_FIELD = 256
local MAX_TOPICS = 64
local DEFAULT_MAXBYTES = 1048576
local MAX_TOPICS_FIELD = 65536

-- Splits "ms-seq" into two numbers; nil when malformed.
local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  if not ms then return nil end
  return tonumber(ms), tonumber(seq)
end

-- True when id a sorts before id b.
local function id_less(a, b)
  local ams, aseq = parse_id(a)
  local bms, bseq = parse_id(b)
  if ams ~= bms then return ams < bms end
  return aseq < bseq
end

-- Returns the id of the last entry ever added, or nil when the key is absent.
local function last_generated(key)
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last > 0 then return last[1][1] end
  if redis.call('EXISTS', key) == 0 then return nil end
  local info = redis.call('XINFO', 'STREAM', key)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return info[i + 1] end
  end
  return nil
end

-- Splits an ingest position "M.n" into two numbers; nil when malformed.
-- (Both stay below 2^53, so the numbers are exact.)
local function parse_pos(s)
  local m, n = string.match(s, '^(%d+)%.(%d+)$')
  if not m or #m > 16 or #n > 16 then return nil end
  return tonumber(m), tonumber(n)
end

-- True when position a is after position b (both well-formed).
local function pos_after(a, b)
  local am, an = parse_pos(a)
  local bm, bn = parse_pos(b)
  if am ~= bm then return am > bm end
  return an > bn
end

-- Drops the publisher-id index entries of events no longer in the stream,
-- once the index has grown to about twice the stream's length limit (so the
-- scan is paid once per ~maxlen publishes; `~` trimming keeps up to about
-- 100 entries more than maxlen).
local function prune_index(key, meta, maxlen)
  if redis.call('HLEN', meta) <= 2 * maxlen + 256 then return end
  local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if #first == 0 then return end
  local oldest = first[1][1]
  local cursor, gone = '0', {}
  repeat
    local page = redis.call('HSCAN', meta, cursor, 'MATCH', 'i:*', 'COUNT', 500)
    cursor = page[1]
    local kv = page[2]
    for j = 1, #kv, 2 do
      if id_less(kv[j + 1], oldest) then gone[#gone + 1] = kv[j] end
    end
  until cursor == '0'
  for j = 1, #gone, 500 do
    redis.call('HDEL', meta, unpack(gone, j, math.min(j + 499, #gone)))
  end
end

local function netstring(s)
  return #s .. ':' .. s .. ','
end

local function bad_field(s)
  return #s == 0 or #s > MAX_FIELD or string.find(s, '[\r\n%z]') ~= nil
end

-- FCALL ssehub_publish 1 <stream key> <data> [type T] [retry MS] [id MID]
--       [maxlen N] [maxage SECONDS]
-- FCALL ssehub_publish 2 <stream key> <meta key> <data> [the same options]
--       [fence EPOCH] [in POSITION]
-- Stores the event, trims history, refreshes the expiry and publishes it on
-- the live channel, atomically; returns the new entry id.
-- With the topic's metadata key P{topic}:m as a second key (brokers):
--   fence EPOCH: refused with "ERR ssehub: fenced" when a higher epoch has
--     written the topic (a deposed leader's late write); recorded otherwise.
--   in POSITION: when the topic has stored this ingest position or a later
--     one, nothing is stored and the answer is the status DUPLICATE (a resend,
--     or a message another broker stored); recorded otherwise.
-- The metadata key gets the stream's expiry.
local function publish(keys, args)
  local key, meta = keys[1], keys[2]
  if not key or string.sub(key, -2) ~= ':s' then
    return redis.error_reply('ERR ssehub: the key must be a topic stream (P{topic}:s)')
  end
  if meta and (string.sub(meta, -2) ~= ':m' or string.sub(meta, 1, -3) ~= string.sub(key, 1, -3)) then
    return redis.error_reply('ERR ssehub: the second key must be the topic metadata (P{topic}:m)')
  end
  local data = args[1]
  if data == nil then return redis.error_reply('ERR ssehub: data is required') end
  local fields = {'data', data}
  local maxlen, maxage = DEFAULT_MAXLEN, DEFAULT_MAXAGE
  local fence, pos, private, topics
  local maxbytes = DEFAULT_MAXBYTES
  local i = 2
  while i <= #args do
    local name, value = args[i], args[i + 1]
    if value == nil then return redis.error_reply('ERR ssehub: ' .. name .. ' needs a value') end
    if name == 'type' then
      if bad_field(value) then return redis.error_reply('ERR ssehub: bad event type') end
      table.insert(fields, 'type'); table.insert(fields, value)
    elseif name == 'retry' then
      if not string.match(value, '^%d+$') or #value > 10 then
        return redis.error_reply('ERR ssehub: retry must be milliseconds')
      end
      table.insert(fields, 'retry'); table.insert(fields, value)
    elseif name == 'id' then
      if bad_field(value) or string.sub(value, 1, 1) == '#' then
        return redis.error_reply('ERR ssehub: bad event id')
      end
      table.insert(fields, 'mid'); table.insert(fields, value)
    elseif name == 'private' then
      private = true
    elseif name == 'topics' then
      if #value > MAX_TOPICS_FIELD then return redis.error_reply('ERR ssehub: topics too long') end
      local ok, list = pcall(cjson.decode, value)
      if not ok or type(list) ~= 'table' or #list < 1 or #list > MAX_TOPICS then
        return redis.error_reply('ERR ssehub: topics must be a JSON array of 1..' .. MAX_TOPICS .. ' strings')
      end
      for _, t in ipairs(list) do
        if type(t) ~= 'string' or #t == 0 then
          return redis.error_reply('ERR ssehub: topics must be a JSON array of 1..' .. MAX_TOPICS .. ' strings')
        end
      end
      topics = value
    elseif name == 'maxlen' then
      maxlen = tonumber(value)
      if not maxlen or maxlen < 1 then return redis.error_reply('ERR ssehub: bad maxlen') end
    elseif name == 'maxage' then
      maxage = tonumber(value)
      if not maxage or maxage < 1 then return redis.error_reply('ERR ssehub: bad maxage') end
    elseif name == 'maxbytes' then
      maxbytes = tonumber(value)
      if not maxbytes or maxbytes < 1 then return redis.error_reply('ERR ssehub: bad maxbytes') end
    elseif name == 'fence' then
      if not string.match(value, '^%d+$') or #value > 16 then
        return redis.error_reply('ERR ssehub: fence must be an epoch number')
      end
      fence = value
    elseif name == 'in' then
      if not parse_pos(value) then return redis.error_reply('ERR ssehub: bad ingest position') end
      pos = value
    else
      return redis.error_reply('ERR ssehub: unknown option ' .. name)
    end
    i = i + 2
  end
  if #data > maxbytes then
    return redis.error_reply('ERR ssehub: data is ' .. #data .. ' bytes, more than maxbytes ' .. maxbytes)
  end
  if (fence or pos) and not meta then
    return redis.error_reply('ERR ssehub: fence and in need the metadata key (FCALL ssehub_publish 2 ...)')
  end
  local record = {}
  local state = {}
  if fence or pos then state = redis.call('HMGET', meta, 'epoch', 'in') end
  if fence then
    local seen = tonumber(state[1] or '')
    if seen and seen > tonumber(fence) then return redis.error_reply('ERR ssehub: fenced') end
    if not seen or seen < tonumber(fence) then
      table.insert(record, 'epoch'); table.insert(record, fence)
    end
  end
  if pos then
    local stored = state[2] or nil
    if stored and parse_pos(stored) and not pos_after(pos, stored) then
      -- a newer leader's resend still fences the older one
      if #record > 0 then redis.call('HSET', meta, unpack(record)) end
      return redis.status_reply('DUPLICATE')
    end
    table.insert(record, 'in'); table.insert(record, pos)
  end
  if private then table.insert(fields, 'private'); table.insert(fields, '1') end
  if topics then table.insert(fields, 'topics'); table.insert(fields, topics) end
  table.insert(fields, 'prev')
  table.insert(fields, last_generated(key) or '0-0')

  local id = redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', unpack(fields))
  local now = redis.call('TIME')
  local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - maxage * 1000
  if cutoff > 0 then redis.call('XTRIM', key, 'MINID', '~', cutoff) end
  redis.call('PEXPIRE', key, maxage * 1000)
  local mid = nil
  for j = 1, #fields, 2 do
    if fields[j] == 'mid' then mid = fields[j + 1] end
  end
  if meta and mid then
    table.insert(record, 'i:' .. mid); table.insert(record, id)
  end
  if #record > 0 then redis.call('HSET', meta, unpack(record)) end
  if meta then
    redis.call('PEXPIRE', meta, maxage * 1000)
    if mid then prune_index(key, meta, maxlen) end
  end

  local msg = {netstring(id)}
  for j = 1, #fields - 2 do msg[#msg + 1] = netstring(fields[j]) end
  redis.call(LIVE_PUBLISH, string.sub(key, 1, -2) .. 'l', table.concat(msg))
  return id
end

-- FCALL_RO ssehub_read 1 <stream key> <after> <count> [maxage SECONDS]
-- <after> is an entry id (events after it), 'earliest' (all retained) or
-- '$' (no events, just the position). Returns
--   {status, position, entries}
-- status: 'ok'; 'gap' when events after <after> were trimmed away;
-- 'expired' when the key is gone and <after> is older than maxage (its
-- events may have expired with it). position: the id of the last entry ever
-- added ('0-0' for no stream). entries: up to <count> [id, fields] pairs.
local function read(keys, args)
  local key, after, count = keys[1], args[1], tonumber(args[2])
  if not key or not after or not count or count < 0 then
    return redis.error_reply('ERR ssehub: usage: ssehub_read 1 <key> <after> <count>')
  end
  local maxage = tonumber(args[4] or '') or DEFAULT_MAXAGE
  local position = last_generated(key)
  if position == nil then
    local status = 'ok'
    local ms = parse_id(after)
    if ms and ms > 0 then
      local now = redis.call('TIME')
      if ms < tonumber(now[1]) * 1000 - maxage * 1000 then status = 'expired' end
    end
    return {status, '0-0', {}}
  end
  if after == '$' or count == 0 then return {'ok', position, {}} end

  local status, start = 'ok', '-'
  if after ~= 'earliest' then
    if not parse_id(after) then return redis.error_reply('ERR ssehub: bad id') end
    start = '(' .. after
    local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
    if #first == 0 then
      if id_less(after, position) then status = 'gap' end
    else
      local prev = nil
      local f = first[1][2]
      for j = 1, #f, 2 do
        if f[j] == 'prev' then prev = f[j + 1] end
      end
      if prev == nil then prev = first[1][1] end
      if id_less(after, prev) then
        status = 'gap'
      elseif prev == '0-0' then
        -- A new stream: an older one may have expired with events after <after>.
        local ams = parse_id(after)
        local fms = parse_id(first[1][1])
        if ams > 0 and ams < fms - maxage * 1000 then status = 'expired' end
      end
    end
  end
  local entries = redis.call('XRANGE', key, start, '+', 'COUNT', count)
  return {status, position, entries}
end

-- FCALL_RO ssehub_resolve 1 <metadata key> <mid>
-- Returns the entry id of the newest event of the topic published with the
-- publisher id <mid>, or nil when none is indexed (never published with the
-- metadata key named, or trimmed away).
local function resolve(keys, args)
  if not keys[1] or not args[1] or string.sub(keys[1], -2) ~= ':m' then
    return redis.error_reply('ERR ssehub: usage: ssehub_resolve 1 <P{topic}:m> <mid>')
  end
  return redis.call('HGET', keys[1], 'i:' .. args[1])
end

-- FCALL ssehub_lease_renew 1 <lease key> <value> <ms>
-- Extends the broker leader lease by ms when it still holds value (ours);
-- returns 1, or 0 when it is gone or someone else's.
local function lease_renew(keys, args)
  local value, ms = args[1], tonumber(args[2] or '')
  if not keys[1] or not value or not ms or ms < 1 then
    return redis.error_reply('ERR ssehub: usage: ssehub_lease_renew 1 <key> <value> <ms>')
  end
  if redis.call('GET', keys[1]) ~= value then return 0 end
  redis.call('PEXPIRE', keys[1], ms)
  return 1
end

-- FCALL ssehub_lease_release 1 <lease key> <value> [<channel>]
-- Deletes the lease when it still holds value and then publishes
-- "released <value>" on channel (standbys take over at once); returns 1,
-- or 0 when it was not ours.
local function lease_release(keys, args)
  local value = args[1]
  if not keys[1] or not value then
    return redis.error_reply('ERR ssehub: usage: ssehub_lease_release 1 <key> <value> [<channel>]')
  end
  if redis.call('GET', keys[1]) ~= value then return 0 end
  redis.call('DEL', keys[1])
  if args[2] then redis.call('PUBLISH', args[2], 'released ' .. value) end
  return 1
end

-- FCALL ssehub_next 1 <counter key> [<channel> [<tag>]]
-- Returns the counter's next value: max(value + 1, Redis time in ms), so it
-- never goes back, even when the key was lost. With a channel, also
-- publishes "<value> <tag>" there in the same step, so subscribers see the
-- values in increasing order (the brokers' sync marks). Leader epochs and
-- sync marks come from here.
local function next_value(keys, args)
  if not keys[1] then return redis.error_reply('ERR ssehub: usage: ssehub_next 1 <key> [<channel> [<tag>]]') end
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local value = math.max((tonumber(redis.call('GET', keys[1]) or '') or 0) + 1, ms)
  local text = string.format('%d', value)
  redis.call('SET', keys[1], text)
  if args[1] then redis.call('PUBLISH', args[1], text .. ' ' .. (args[2] or '')) end
  return value
end

redis.register_function('ssehub_publish', publish)
redis.register_function('ssehub_lease_renew', lease_renew)
redis.register_function('ssehub_lease_release', lease_release)
redis.register_function('ssehub_next', next_value)
redis.register_function{function_name = 'ssehub_read', callback = read, flags = {'no-writes'}}
redis.register_function{function_name = 'ssehub_resolve', callback = resolve, flags = {'no-writes'}}
