export { configSchema, type Config, type ConfigInput, type EtcdConfig, type S3Config } from './schema.js';
export { loadConfig, redactConfig } from './load.js';
export { SETTINGS, envName, ENV_PREFIX, type Setting } from './settings.js';
