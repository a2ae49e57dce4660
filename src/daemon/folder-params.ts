import { KitsyncError } from '../core/errors.js'
import type { FolderAddOptions, FolderSelectionChange } from '../core/folder-types.js'

/** The params of a folderAdd control request, checked. */
export function folderAddParams(p: Record<string, unknown>): FolderAddOptions {
  const { path, name } = p
  if (typeof path !== 'string' || path === '') throw new KitsyncError('INVALID_ARGUMENT', 'path must be a non-empty string')
  if (typeof name !== 'string') throw new KitsyncError('INVALID_ARGUMENT', 'name must be a string')
  return { path, name, ...folderSelectionParams(p) }
}

/** The include, exclude and maxFileSize params of folderAdd and folderSet, checked (those absent stay absent). */
export function folderSelectionParams(p: Record<string, unknown>): FolderSelectionChange {
  const { include, exclude, maxFileSize } = p
  const strings = (v: unknown, field: string): string[] | undefined => {
    if (v === undefined) return undefined
    if (!Array.isArray(v) || v.some((e) => typeof e !== 'string')) throw new KitsyncError('INVALID_ARGUMENT', `${field} must be an array of strings`)
    return v as string[]
  }
  if (maxFileSize !== undefined && (typeof maxFileSize !== 'number' || !Number.isInteger(maxFileSize) || maxFileSize <= 0))
    throw new KitsyncError('INVALID_ARGUMENT', 'maxFileSize must be a positive whole number of bytes')
  const inc = strings(include, 'include')
  const exc = strings(exclude, 'exclude')
  return {
    ...(inc === undefined ? {} : { include: inc }),
    ...(exc === undefined ? {} : { exclude: exc }),
    ...(maxFileSize === undefined ? {} : { maxFileSize: maxFileSize as number }),
  }
}
