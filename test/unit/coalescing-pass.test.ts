import { CoalescingPass } from '../../wiring/coalescing-pass';

/** A pass that waits until the test releases it, counting how many passes started. */
function gatedPass() {
  let started = 0;
  let release: () => void = () => undefined;
  const pass = () => {
    started++;
    return new Promise<void>((resolve) => {
      release = resolve;
    });
  };
  return { pass, started: () => started, release: () => release() };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('kicks while a pass runs coalesce into exactly one more pass', async () => {
  const gate = gatedPass();
  const passes = new CoalescingPass(gate.pass, () => undefined);
  passes.kick();
  passes.kick();
  passes.kick();
  expect(gate.started()).toBe(1);
  gate.release();
  await tick();
  expect(gate.started()).toBe(2);
  gate.release();
  await tick();
  expect(gate.started()).toBe(2);
});

test('a failed pass is reported, not thrown, and the next kick runs again', async () => {
  const errors: unknown[] = [];
  let runs = 0;
  const passes = new CoalescingPass(
    async () => {
      runs++;
      throw new Error('boom');
    },
    (error) => errors.push(error),
  );
  passes.kick();
  await tick();
  passes.kick();
  await tick();
  expect(runs).toBe(2);
  expect(errors.map((e) => (e as Error).message)).toEqual(['boom', 'boom']);
});

test('stop waits for the pass in progress and ends every later kick and sweep', async () => {
  // The sweep's clock is faked: "no pass after stop" is checked over many sweep intervals without waiting for them.
  jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick'] });
  const gate = gatedPass();
  const passes = new CoalescingPass(gate.pass, () => undefined);
  passes.sweepEvery(5);
  passes.kick();
  let stopped = false;
  const stopping = passes.stop().then(() => {
    stopped = true;
  });
  expect(passes.stopped).toBe(true);
  await tick();
  expect(stopped).toBe(false);
  gate.release();
  await stopping;
  passes.kick();
  jest.advanceTimersByTime(50); // ten sweep intervals
  await tick();
  expect(gate.started()).toBe(1);
  jest.useRealTimers();
});

test('the sweep kicks a pass every interval, after its hook', async () => {
  jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick'] });
  let runs = 0;
  let hooks = 0;
  const passes = new CoalescingPass(
    async () => {
      runs++;
    },
    () => undefined,
  );
  passes.sweepEvery(5, () => hooks++);
  jest.advanceTimersByTime(5);
  await tick();
  jest.advanceTimersByTime(5);
  await tick();
  expect({ runs, hooks }).toEqual({ runs: 2, hooks: 2 });
  await passes.stop();
  jest.useRealTimers();
});
