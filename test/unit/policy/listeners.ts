import type { ListenerConfig } from '../../../src/config/schema.ts';

/** A listener config with test defaults; override what the case is about. */
export function listener(over: Partial<ListenerConfig> & Pick<ListenerConfig, 'name'>): ListenerConfig {
  return {
    host: '0.0.0.0',
    port: 0,
    tls: 'starttls',
    requireTls: true,
    requireTlsExplicit: false,
    proxyProtocol: false,
    trustedProxies: ['127.0.0.0/8', '::1/128'],
    allow: null,
    ...over,
  };
}
