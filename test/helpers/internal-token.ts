/** The internal credential of storage nodes started directly by tests (not through a Deployment). */
export const TEST_INTERNAL_TOKEN = 'test-internal-token-0123456789abcdef';
