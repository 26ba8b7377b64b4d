/**
 * CloudinaryField values as pycloudinary stores them:
 * `{resource_type}/{type}/v{version}/{public_id}.{format}`, where the prefix, the version and the
 * format are each optional. Parsing follows pycloudinary's CLOUDINARY_FIELD_DB_RE so that we read the
 * public id Django would have passed to `destroy`; one deliberate difference: a format never holds a
 * `/` (pycloudinary would read `a.b/c` as public id `a` with format `b/c`).
 */
export type ResourceType = "image" | "video" | "raw"
export type DeliveryType = "upload" | "private" | "authenticated"

export interface AssetRef {
  readonly resourceType: ResourceType
  readonly deliveryType: DeliveryType
  readonly publicId: string
}

export type ParsedField =
  | { readonly kind: "none" }
  | { readonly kind: "asset"; readonly asset: AssetRef; readonly version?: string; readonly format?: string }
  | { readonly kind: "placeholder" }
  | { readonly kind: "unparseable"; readonly reason: string }

const FIELD_PATTERN =
  /^(?:(image|raw|video)\/(upload|private|authenticated)\/)?(?:v(\d+)\/)?(.*?)(?:\.([^./]+))?$/s

/** The default that migration 0008 and `create_bulk_data` stored: not an asset of the prompt. */
export const PLACEHOLDER_VALUE = "placeholder"

export const parseCloudinaryField = (
  value: string | null | undefined,
  defaultResourceType: ResourceType
): ParsedField => {
  if (value === null || value === undefined) return { kind: "none" }
  if (value.length === 0) return { kind: "unparseable", reason: "empty value" }
  if (value.trim().length === 0) return { kind: "unparseable", reason: "whitespace only" }
  if (value !== value.trim()) return { kind: "unparseable", reason: "leading or trailing whitespace" }
  if (value === PLACEHOLDER_VALUE) return { kind: "placeholder" }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return { kind: "unparseable", reason: "a URL, not a stored field value" }
  const match = FIELD_PATTERN.exec(value)
  if (match === null) return { kind: "unparseable", reason: "does not match the CloudinaryField format" }
  const [, resourceType, deliveryType, version, publicId, format] = match
  if (publicId === undefined || publicId.length === 0 || publicId.endsWith("/")) {
    return { kind: "unparseable", reason: "no public id" }
  }
  if (/[\u0000-\u001f]/.test(publicId)) return { kind: "unparseable", reason: "control characters in public id" }
  return {
    kind: "asset",
    asset: {
      resourceType: (resourceType as ResourceType | undefined) ?? defaultResourceType,
      deliveryType: (deliveryType as DeliveryType | undefined) ?? "upload",
      publicId
    },
    ...(version !== undefined ? { version } : {}),
    ...(format !== undefined ? { format } : {})
  }
}

/** One string per asset, for sets and maps: an image and a video may share a public id. */
export const assetKey = (asset: AssetRef): string => `${asset.resourceType}/${asset.deliveryType}/${asset.publicId}`

/** The assets a prompt row owns: its image column (image by default) and its video column. */
export const promptAssets = (row: {
  readonly featuredImage: string | null
  readonly featuredVideo: string | null
}): ReadonlyArray<AssetRef> => {
  const assets: Array<AssetRef> = []
  for (const parsed of [
    parseCloudinaryField(row.featuredImage, "image"),
    parseCloudinaryField(row.featuredVideo, "video")
  ]) {
    if (parsed.kind === "asset") assets.push(parsed.asset)
  }
  return assets
}
