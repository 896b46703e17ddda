// The workflow bundle's entry point: every workflow the worker runs is exported from here.
export { accountWorkflow } from './account-workflow';
export { releaseExpiredHoldsWorkflow } from './release-expired-holds-workflow';
export { webhookDeliveryWorkflow } from './webhook-delivery-workflow';
export { dunningWorkflow } from './dunning-workflow';
export { reconciliationWorkflow } from './reconciliation-workflow';
