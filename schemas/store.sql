-- wattrace store (DESIGN §3). One database holds many runs; a run is written in one transaction
-- (all or nothing) and never changes an earlier run. Every table carries run_id, so runs and
-- variants compare in plain SQL. Units are in column names: *_ns nanoseconds, *_s seconds,
-- joules, watts. Times *_ns are relative to the run's base timestamp (runs.base_ts_ns), the
-- first timestamp of the run's traces, so they stay exact integers.
-- This script is idempotent; the schema version is PRAGMA user_version (3). A database of an
-- earlier version is migrated in place, in the transaction of the run that opens it for writing
-- (src/store/store.ts, MIGRATIONS).

-- One replay of a pipeline (one variant) over its traces.
CREATE TABLE IF NOT EXISTS runs (
  -- Increasing id; `matrix` and `report` default to the newest.
  run_id       INTEGER PRIMARY KEY AUTOINCREMENT,
  -- The pipeline's `name`.
  pipeline     TEXT NOT NULL,
  -- The variant that was applied, 'base' for none.
  variant      TEXT NOT NULL DEFAULT 'base',
  -- The resolved pipeline settings as JSON (absolute paths, stages in run order, variant applied).
  params       TEXT NOT NULL,
  -- The inputs as JSON: {"<kind>": {"path", "sha256", "bytes", "rows"}} for each trace, and {"path", "sha256", "bytes"} for the profile.
  inputs       TEXT NOT NULL,
  -- Wall-clock start of the replay, ISO 8601 UTC.
  started_at   TEXT NOT NULL,
  -- Wall-clock end of the replay; set in the same transaction, so never NULL once committed.
  finished_at  TEXT,
  -- wattrace version that wrote the run.
  tool_version TEXT NOT NULL,
  -- The run's time origin, exact decimal ns: the smallest ts_ns in the first 64 KiB of its traces.
  base_ts_ns   TEXT,
  -- Accounted span of the run: from the first period's start to the last event.
  -- t0_ns: start of the first accounted period; t1_ns: the last event.
  t0_ns        INTEGER,
  t1_ns        INTEGER,
  -- Formula: duration_ns = t1_ns − t0_ns; energy_matrix.watts = joules / (duration_ns / 1e9).
  duration_ns  INTEGER,
  -- Reporting interval of the energy rows.
  interval_ns  INTEGER,
  -- The run's `--label KEY=VALUE` pairs as a JSON object of strings (`{"host": "node17"}`), '{}'
  -- for none; `export` writes each key as a column (schema 3).
  labels       TEXT NOT NULL DEFAULT '{}'
);

-- The energy matrix of Figure 5 in long form, per reporting interval: who (consumer, and the
-- guest resource container inside it) consumed how much energy of which physical device, in
-- which state, directly or through a driver VM.
CREATE TABLE IF NOT EXISTS energy (
  -- The run this row belongs to (in every table below as well).
  run_id    INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  -- Reporting interval [t0_ns, t1_ns), clipped to the run's span. An interval may appear in
  -- several rows for one key (a late contribution after an early flush); always SUM.
  t0_ns     INTEGER NOT NULL,
  t1_ns     INTEGER NOT NULL,
  -- A profile VM id, 'idle' (the idle virtual processor: halt cycles) or '(unattributed)'.
  consumer  TEXT NOT NULL,
  -- Guest resource container, NULL at host level. Container rows repeat (split up) the
  -- energy of their VM's host-level rows: sum either level, never both.
  container TEXT,
  -- NULL for direct consumption; else the driver VM that consumed it on the consumer's behalf.
  via       TEXT,
  -- Physical device: 'cpu' (all physical CPUs of the log) or a disk id of the profile.
  device    TEXT NOT NULL,
  -- 'idle': the device's minimum consumption (§3.2: cpu from the TSC, disk idle_watts);
  -- 'active': the access consumption above it.
  kind      TEXT NOT NULL CHECK (kind IN ('idle', 'active')),
  joules    REAL NOT NULL
);
-- Covers the energy_matrix view, so summing a run reads only the index.
-- Rows are found by run and time. (Schema 1 had a covering index by key, which made writing a
-- row 7x slower, measured, for a 5x faster energy_matrix; the matrix of a 2M-row run still sums in
-- about a second.)
CREATE INDEX IF NOT EXISTS energy_by_time ON energy (run_id, t0_ns);

-- The energy matrix summed over a run at host level (container IS NULL).
-- Formula: watts = joules / (runs.duration_ns / 1e9).
CREATE VIEW IF NOT EXISTS energy_matrix AS
SELECT e.run_id, e.consumer, e.via, e.device, e.kind,
       SUM(e.joules) AS joules,
       SUM(e.joules) / (r.duration_ns / 1e9) AS watts
FROM energy e JOIN runs r ON r.run_id = e.run_id
WHERE e.container IS NULL
GROUP BY e.run_id, e.consumer, e.via, e.device, e.kind;

-- Each VM's private view of the performance counters (§3.4.1): per interval, the advance of
-- each event while the VM ran (hardware value minus the other VMs' advances).
CREATE TABLE IF NOT EXISTS virtual_counters (
  run_id  INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  -- Reporting interval [t0_ns, t1_ns).
  t0_ns   INTEGER NOT NULL,
  t1_ns   INTEGER NOT NULL,
  -- The VM whose private view this is.
  vm      TEXT NOT NULL,
  -- An event column of the profile, or 'tsc'.
  event   TEXT NOT NULL,
  -- Events counted in the interval, as a number (exact below 2^53).
  advance REAL NOT NULL
);
-- By run and time, as energy (schema 1's index by (run, vm, event) made a row 4.5x dearer to write).
CREATE INDEX IF NOT EXISTS virtual_counters_by_time ON virtual_counters (run_id, t0_ns);

-- Host-level CPU manager (§3.3.4, §3.3.6), one row per VM per manager period in which the VM
-- had a limit or demand (work done or backlog). A VM without a row in a period had neither: its
-- watts, work_s and backlog_s were 0 and its share the unchanged one of its previous row (an
-- unlimited VM's stride never moves). Leaving those rows out halves the PlanetLab day's table.
CREATE TABLE IF NOT EXISTS cpu_policy (
  run_id      INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  -- End of the manager period.
  t_ns        INTEGER NOT NULL,
  -- The VM. (The idle virtual processor, which halts, has no rows: its share is always 1 ticket.)
  vm          TEXT NOT NULL,
  -- Stride-scheduler tickets after this period's adjustment.
  share       REAL NOT NULL,
  -- The VM's active CPU power limit, NULL when unlimited or before start_s.
  limit_watts REAL,
  -- Active CPU power in the period. Formula: watts = active joules / period.
  watts       REAL NOT NULL,
  -- CPU work completed in the period, in seconds of recorded CPU time.
  work_s      REAL NOT NULL,
  -- Demand delayed so far, in seconds of recorded CPU time.
  backlog_s   REAL NOT NULL
);

-- Host-level disk request shaping (§3.3.5, §3.3.6), one row per client per manager period.
CREATE TABLE IF NOT EXISTS disk_policy (
  run_id      INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  -- End of the manager period.
  t_ns        INTEGER NOT NULL,
  -- The client VM.
  vm          TEXT NOT NULL,
  -- Throttle factor t of the paper's formula, within [0, t_max].
  throttle    REAL NOT NULL,
  -- Requests the driver serves per refresh period.
  budget      REAL NOT NULL,
  -- The client's driver-side active power limit, NULL when unlimited or before start_s.
  limit_watts REAL,
  -- Driver-side active power for this client: disk active + driver CPU for its requests.
  watts       REAL NOT NULL,
  -- Requests served in the period.
  requests    INTEGER NOT NULL,
  -- Bytes served in the period.
  bytes       INTEGER NOT NULL,
  -- Requests still waiting at the end of the period.
  backlog     INTEGER NOT NULL
);

-- Resource containers inside energy-aware guests (§3.4.3), one row per container per period.
CREATE TABLE IF NOT EXISTS containers (
  run_id       INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  -- End of the guest's budget period.
  t_ns         INTEGER NOT NULL,
  -- The energy-aware guest VM and its resource container.
  vm           TEXT NOT NULL,
  container    TEXT NOT NULL,
  -- The container's power limit in the period (static or its share of the VM budget).
  limit_watts  REAL,
  -- Power as the guest accounts it (virtual counters + driver-returned disk cost).
  watts        REAL NOT NULL,
  -- CPU work the container completed in the period, in seconds of recorded CPU time.
  work_s       REAL NOT NULL,
  -- Time the container was preempted for an exhausted budget in the period.
  preempted_ns INTEGER NOT NULL
);

-- Summary figures of a run, read by `compare` (DESIGN §6). The unit is in the name.
CREATE TABLE IF NOT EXISTS metrics (
  run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
  -- Dotted name, e.g. energy.total_joules, energy.<consumer>.joules, cpu.<vm>.mean_watts.
  name   TEXT NOT NULL,
  value  REAL NOT NULL,
  PRIMARY KEY (run_id, name)
);
