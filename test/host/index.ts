export { CLIENT_ADDRESSES, EXTERNAL_INTERFACE, HOST_ADDRESSES, isIPv6 } from './addresses.js';
export { TEST_IMAGE, type RunContainerOptions } from './containers.js';
export type { IptablesVariant } from './engine.js';
export type { ProbeOptions, ProbeOutcome, Protocol } from './probe.js';
export type { EngineVersion } from './provisioned.js';
export {
  attachTestHost,
  startTestHost,
  TestHost,
  type Family,
  type RunningContainer,
  type TestHostOptions,
} from './test-host.js';
