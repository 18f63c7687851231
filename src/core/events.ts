/**
 * Time-ordered events, carried in columnar batches (struct of typed arrays) so the record path
 * allocates nothing per record: a CSV reader or a hand byte scanner fills the same columns.
 *
 * Every batch has `t`, the record's own timestamp (ns relative to the run's base), which is the
 * order key of the merged stream, and `line`, the source line of each record for error messages.
 */

export type BatchKind = 'switch' | 'disk' | 'container' | 'measured';

interface BatchBase {
  readonly file: string;
  length: number;
  readonly capacity: number;
  /** Record timestamp (ns since the run's base); for periods, the end of the period. */
  readonly t: Float64Array;
  /** 1-based line in `file`. */
  readonly line: Float64Array;
}

/** One period between two context switches on one physical CPU (docs/formats.md, cswitch.csv). */
export interface SwitchBatch extends BatchBase {
  readonly kind: 'switch';
  /** Physical CPU number as written in the log. */
  readonly cpu: Int32Array;
  /** Consumer index (Machine.consumers) of the VM that ran in the period. */
  readonly vm: Int32Array;
  /** Period start: the previous row's timestamp on the same CPU. */
  readonly t0: Float64Array;
  /** TSC advance over the period, in ticks. */
  readonly dtsc: Float64Array;
  /** Event advances, row-major: dev[i * nEvents + e] for Machine.eventNames[e]. */
  readonly dev: Float64Array;
  readonly nEvents: number;
}

/** One completed disk request (docs/formats.md, disk.csv). */
export interface DiskBatch extends BatchBase {
  readonly kind: 'disk';
  /** Consumer index of the client VM. */
  readonly vm: Int32Array;
  /** 0 = read, 1 = write. */
  readonly op: Uint8Array;
  readonly offset: Float64Array;
  readonly bytes: Float64Array;
  /** Device service time in ns, NaN when not recorded. */
  readonly latency: Float64Array;
  /** Index into `names` of the issuing container, −1 for none. */
  readonly container: Int32Array;
  /** Index into `names` of the disk (the profile's only disk when the log does not say). */
  readonly disk: Int32Array;
  /** Interned container and disk names, shared by all batches of one reader. */
  readonly names: string[];
}

/** One period between two resource-container switches inside a guest (docs/formats.md, guest.csv). */
export interface ContainerBatch extends BatchBase {
  readonly kind: 'container';
  readonly vm: Int32Array;
  readonly cpu: Int32Array;
  /** Index into `names` of the container that ran. */
  readonly container: Int32Array;
  /** Period start; equal to `t` for the row that opens a (vm, cpu) lane (an empty period). */
  readonly t0: Float64Array;
  /** Hardware counter advances over the period, as read inside the guest. */
  readonly dtsc: Float64Array;
  readonly dev: Float64Array;
  readonly nEvents: number;
  readonly names: string[];
}

/** One sample of an external power meter (docs/formats.md, measured.csv). */
export interface MeasuredBatch extends BatchBase {
  readonly kind: 'measured';
  /** Index into `names` of the device. */
  readonly device: Int32Array;
  readonly watts: Float64Array;
  readonly names: string[];
}

export type Batch = SwitchBatch | DiskBatch | ContainerBatch | MeasuredBatch;

/** Records [from, to) of one batch: a run of the merged stream that no other source interleaves. */
export interface EventSlice<B extends Batch = Batch> {
  readonly batch: B;
  readonly from: number;
  readonly to: number;
}

export const BATCH_CAPACITY = 4096;

/**
 * Batches of a thread that hands them to another (the decoder thread) live in shared memory:
 * both threads see the same columns, so nothing is copied or transferred, and no memory is
 * allocated in one thread and freed in the other. Per thread: module state is per thread.
 */
let sharedColumns = false;
export function allocateBatchesInSharedMemory(): void {
  sharedColumns = true;
}
const buffer = (bytes: number): ArrayBuffer => (sharedColumns ? (new SharedArrayBuffer(bytes) as unknown as ArrayBuffer) : new ArrayBuffer(bytes));
const f64 = (n: number) => new Float64Array(buffer(8 * n));
const i32 = (n: number) => new Int32Array(buffer(4 * n));
const u8 = (n: number) => new Uint8Array(buffer(n));

function base(file: string, capacity: number) {
  return { file, length: 0, capacity, t: f64(capacity), line: f64(capacity) };
}

export function newSwitchBatch(file: string, nEvents: number, capacity = BATCH_CAPACITY): SwitchBatch {
  return {
    kind: 'switch',
    ...base(file, capacity),
    cpu: i32(capacity),
    vm: i32(capacity),
    t0: f64(capacity),
    dtsc: f64(capacity),
    dev: f64(capacity * nEvents),
    nEvents,
  };
}

export function newDiskBatch(file: string, names: string[], capacity = BATCH_CAPACITY): DiskBatch {
  return {
    kind: 'disk',
    ...base(file, capacity),
    vm: i32(capacity),
    op: u8(capacity),
    offset: f64(capacity),
    bytes: f64(capacity),
    latency: f64(capacity),
    container: i32(capacity),
    disk: i32(capacity),
    names,
  };
}

export function newContainerBatch(file: string, nEvents: number, names: string[], capacity = BATCH_CAPACITY): ContainerBatch {
  return {
    kind: 'container',
    ...base(file, capacity),
    vm: i32(capacity),
    cpu: i32(capacity),
    container: i32(capacity),
    t0: f64(capacity),
    dtsc: f64(capacity),
    dev: f64(capacity * nEvents),
    nEvents,
    names,
  };
}

export function newMeasuredBatch(file: string, names: string[], capacity = BATCH_CAPACITY): MeasuredBatch {
  return {
    kind: 'measured',
    ...base(file, capacity),
    device: i32(capacity),
    watts: f64(capacity),
    names,
  };
}
