-- abandon: a job that ended without a worker gives up its hand-offs: its unique key,
-- and its workflow, which fails. After an operator's cancel of a waiting job it is sent
-- in the same MULTI/EXEC transaction as the cancel.lua call, so both apply together;
-- after the recoverer parked a poison pill (recover.lua), right after it.
--
-- KEYS[1]  job record       bananas:job:<id>
-- KEYS[2]  unique lock      bananas:unique:<unique_key> (any key when ARGV[2] is 0)
-- KEYS[3]  workflow         bananas:workflow:<workflow_id> (any key when ARGV[3] is 0)
-- KEYS[4]  its outcome      bananas:result:<workflow_id>
-- ARGV[1]  job id
-- ARGV[2]  1: delete the unique lock if it still holds this job id
-- ARGV[3]  1: the job is a workflow step; fail the workflow if it still runs
-- ARGV[4]  seconds the workflow's state and outcome are kept after it ended
-- ARGV[5]  the workflow's result channel  bananas:result:notify:<workflow_id>
-- ARGV[6]  now (RFC 3339)
-- ARGV[7]  the status the job's record must have: "cancelled" or "failed"
-- ARGV[8]  why the workflow failed
--
-- Returns 1, or 0 when the record does not have that status (nothing done).
local record = redis.call('GET', KEYS[1])
if not record then
  return 0
end
local ok, job = pcall(cjson.decode, record)
if not ok or type(job) ~= 'table' or job['status'] ~= ARGV[7] then
  return 0
end
if ARGV[2] == '1' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
if ARGV[3] == '1' and redis.call('HGET', KEYS[3], 'state') == 'running' then
  local kept = tonumber(ARGV[4])
  redis.call('HSET', KEYS[3], 'state', 'failed', 'failed_step', ARGV[1], 'finished_at', ARGV[6])
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[4], 'status', 'failed', 'name', 'workflow',
    'error', ARGV[8], 'finished_at', ARGV[6])
  redis.call('EXPIRE', KEYS[4], kept)
  redis.call('EXPIRE', KEYS[3], kept)
  notify(ARGV[5], 'failed')
end
return 1
