/** Client: a stream for outgoing connections: `new MyClient().connect(address)`. */
import { Stream } from './stream.js';

export class Client extends Stream {}
