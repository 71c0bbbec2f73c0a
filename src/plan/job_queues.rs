//! The tables of the job queues applications run on PostgreSQL. Their workers fetch jobs
//! without a tenant set (one worker serves every tenant), so once row-level security is on
//! they would find no job at all: the jobs would silently stop running.

/// Table name → the queue that keeps it. Names only the queue uses (pg-boss's and Graphile
/// Worker's generic `job`/`jobs` live in schemas of their own, which a plan converts only when
/// asked to).
const TABLES: &[(&str, &str)] = &[
    ("oban_jobs", "Oban"),
    ("oban_peers", "Oban"),
    ("oban_producers", "Oban"),
    ("good_jobs", "GoodJob"),
    ("good_job_batches", "GoodJob"),
    ("good_job_executions", "GoodJob"),
    ("good_job_processes", "GoodJob"),
    ("good_job_settings", "GoodJob"),
    ("solid_queue_jobs", "Solid Queue"),
    ("solid_queue_ready_executions", "Solid Queue"),
    ("solid_queue_claimed_executions", "Solid Queue"),
    ("solid_queue_scheduled_executions", "Solid Queue"),
    ("solid_queue_blocked_executions", "Solid Queue"),
    ("solid_queue_failed_executions", "Solid Queue"),
    ("solid_queue_recurring_executions", "Solid Queue"),
    ("solid_queue_recurring_tasks", "Solid Queue"),
    ("solid_queue_processes", "Solid Queue"),
    ("solid_queue_pauses", "Solid Queue"),
    ("solid_queue_semaphores", "Solid Queue"),
    ("que_jobs", "Que"),
    ("que_lockers", "Que"),
    ("delayed_jobs", "Delayed::Job"),
    ("river_job", "River"),
    ("river_leader", "River"),
    ("river_queue", "River"),
    ("river_client", "River"),
    ("river_client_queue", "River"),
    ("procrastinate_jobs", "Procrastinate"),
    ("procrastinate_events", "Procrastinate"),
    ("procrastinate_periodic_defers", "Procrastinate"),
    ("procrastinate_workers", "Procrastinate"),
    ("django_q_ormq", "Django Q"),
];

/// The queue whose table is called `name`, if one is.
pub fn job_queue(name: &str) -> Option<&'static str> {
    TABLES.iter().find(|(table, _)| *table == name).map(|(_, queue)| *queue)
}
