import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';

/**
 * Replays every saved workflow history (test/histories, recorded by `npm run histories:record` from real runs:
 * account workflows, and a webhook delivery retried on its schedule) through the current workflow code. A change that would make running workflows non-deterministic fails
 * here; guard such changes with `patched()` and record a new history.
 */
const HISTORY_DIR = path.join(__dirname, 'histories');
const files = fs.readdirSync(HISTORY_DIR).filter((f) => f.endsWith('.json'));

test('there are saved histories to replay, including a timer, a signal and a continue-as-new', () => {
  const eventTypes = new Set(
    files.flatMap((f) => readHistory(f).history.events.map((e: { eventType: string }) => e.eventType)),
  );
  expect(files.length).toBeGreaterThanOrEqual(4);
  const signals = files.flatMap((f) =>
    readHistory(f)
      .history.events.filter(
        (e: { eventType: string }) => e.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED',
      )
      .map(
        (e: { workflowExecutionSignaledEventAttributes: { signalName: string } }) =>
          e.workflowExecutionSignaledEventAttributes.signalName,
      ),
  );
  // Histories from before money requests were signalled (Updates), and after (signals, the run-start patch), and
  // with auto-recharge (its settings signal, crossings acted on behind their patch), and the sweep's wake.
  expect(new Set(signals)).toEqual(
    new Set([
      'expireCredit',
      'balanceThresholdCrossed',
      'paymentMethodChanged',
      'topUpRequested',
      'creditGrantRequested',
      'autoRechargeChanged',
      'wake',
    ]),
  );
  for (const type of [
    'EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED',
    'EVENT_TYPE_ACTIVITY_TASK_COMPLETED',
    'EVENT_TYPE_TIMER_FIRED',
    'EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED',
    'EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW',
  ]) {
    expect(eventTypes).toContain(type);
  }
});

test.each(files)('history %s replays deterministically through the current workflow code', async (file) => {
  const { workflow_id, history } = readHistory(file);
  await Worker.runReplayHistory(
    { workflowBundle: { codePath: process.env.TEST_WORKFLOW_BUNDLE! }, replayName: file },
    history,
    workflow_id,
  );
});

function readHistory(file: string) {
  return JSON.parse(fs.readFileSync(path.join(HISTORY_DIR, file), 'utf8'));
}
