/** Client: a stream for outgoing connections: `new MyClient().connect(address)`. */
import { Stream } from './stream.js';

/**
 * An outgoing connection: subclass it, then `await new MyClient().connect(address)`.
 * One client makes one connection; set `reconnect` to retry and reconnect automatically.
 */
export class Client extends Stream {}
