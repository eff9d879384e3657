/**
 * Naver Cloud Platform Object Storage: S3-compatible, so a preset over the S3 store. What differs
 * is the endpoint per region, the signing region name (`kr-standard`), path-style addressing and
 * listing: NCP does not implement ListObjectsV2, so V1 with Marker paging is used.
 * Regions and endpoints: https://api.ncloud-docs.com/docs/en/storage-objectstorage
 */
import type { S3Config } from '../../core/config/index.js';
import { ConfigError } from '../../core/errors.js';
import { parseBucketUrl } from './bucket-url.js';
import { S3Store, type S3StoreOptions } from './s3.js';

/** URL region -> the service's endpoint; the SDK signs with `<region>-standard`. */
export const NCP_ENDPOINTS: Readonly<Record<string, string>> = {
  kr: 'https://kr.object.ncloudstorage.com',
  us: 'https://us.object.ncloudstorage.com',
  sg: 'https://sg.object.ncloudstorage.com',
  jp: 'https://jp.object.ncpstorage.com',
  de: 'https://de.object.ncloudstorage.com',
};

/**
 * Opens `ncp://bucket/prefix?region=kr`; `store.s3.endpoint` overrides the region's endpoint.
 * The URL's region also decides the signing region, so `store.s3.region` is not used here.
 */
export function openNcpStore(url: string, s3: S3Config, tuning: Pick<S3StoreOptions, 'pageSize'> = {}): S3Store {
  const { bucket, prefix, query } = parseBucketUrl(url, ['region']);
  const given = query.get('region') ?? 'kr';
  // Both `kr` and the signing name `kr-standard` are accepted, since NCP's docs show both.
  const region = given.replace(/-standard$/, '');
  const endpoint = s3.endpoint ?? NCP_ENDPOINTS[region];
  if (endpoint === undefined) {
    throw new ConfigError(
      `store.url: unknown NCP region "${given}" (known: ${Object.keys(NCP_ENDPOINTS).join(', ')}); for another site set store.s3.endpoint`,
    );
  }
  return new S3Store({
    bucket,
    prefix,
    location: `ncp://${bucket}${prefix ? `/${prefix}` : ''}?region=${region}`,
    s3: { ...s3, endpoint, region: `${region}-standard`, forcePathStyle: true },
    listing: 'v1',
    ...tuning,
  });
}
