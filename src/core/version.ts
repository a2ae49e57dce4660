/** Kept equal to package.json's version by a unit test. */
export const KITSYNC_VERSION = '0.1.0'
