// Free loopback TCP ports for the real servers a test starts.

export { freeLoopbackPort as freePort } from '../../src/util/free-port.js';
