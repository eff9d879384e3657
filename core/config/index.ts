export { configSchema, type Config, type ConfigInput, type EtcdConfig, type S3Config } from './schema.js';
export { loadConfig, redactConfig, describeIssues, type LoadOptions } from './load.js';
export { SETTINGS, SECRET_PATHS, envName, ENV_PREFIX, type Setting } from './settings.js';
