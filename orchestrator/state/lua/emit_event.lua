-- Append one event to the stream of a run that still exists. ARGV: event_json.
if run_exists() then emit(ARGV[1]) end
return 0
