// The ring tests start threads of their own; on a 2-core box running them one class at a time keeps every
// test's threads from starving another's (the deadlines stay generous either way).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
