/**
 * A pass of work (deliver what an outbox holds) that runs when kicked and on a sweep: a kick while a pass runs
 * coalesces into one more pass after it, so any number of kicks cost at most one pass in flight and one queued. A
 * failed pass is reported, never thrown: the next kick or sweep runs it again. The API's crossing notifier and the
 * worker's webhook dispatcher run their outboxes this way.
 */
export class CoalescingPass {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private again = false;
  private stoppedFlag = false;

  constructor(
    private readonly pass: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** Whether `stop` was called: a pass in progress checks it between batches and ends early. */
  get stopped(): boolean {
    return this.stoppedFlag;
  }

  /** Kicks a pass every `interval_ms` until `stop`, after `beforeEach` (e.g. re-opening a lost listener). */
  sweepEvery(interval_ms: number, beforeEach?: () => void): void {
    this.timer = setInterval(() => {
      beforeEach?.();
      this.kick();
    }, interval_ms);
    this.timer.unref();
  }

  /** Runs a pass soon; calls while one runs coalesce into one more pass. */
  kick(): void {
    if (this.stoppedFlag) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((error: unknown) => this.onError(error))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Stops the sweep (at once) and waits for the pass in progress; idempotent. */
  async stop(): Promise<void> {
    this.stoppedFlag = true;
    clearInterval(this.timer);
    await this.running;
  }
}
