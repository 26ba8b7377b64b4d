import { describe, expect, it } from "vitest"
import { assetKey, parseCloudinaryField, promptAssets } from "../../src/domain/cloudinaryField.js"

describe("parseCloudinaryField", () => {
  it.each([
    ["image/upload/v1712345678/folder/name.jpg", "image", "upload", "folder/name"],
    ["image/upload/abc123xyz", "image", "upload", "abc123xyz"],
    ["video/upload/folder/vid1", "video", "upload", "folder/vid1"],
    ["video/upload/v1700000000/clips/dance.mp4", "video", "upload", "clips/dance"],
    ["image/private/v1/secret/one.png", "image", "private", "secret/one"],
    ["bare_public_id", "image", "upload", "bare_public_id"],
    ["v123/folder/x.webp", "image", "upload", "folder/x"],
    ["folder.v2/name", "image", "upload", "folder.v2/name"],
    ["unicodé/ファイル.jpg", "image", "upload", "unicodé/ファイル"]
  ])("reads %s", (value, resourceType, deliveryType, publicId) => {
    const parsed = parseCloudinaryField(value, "image")
    expect(parsed).toMatchObject({ kind: "asset", asset: { resourceType, deliveryType, publicId } })
  })

  it("uses the column's default resource type when the value has no prefix", () => {
    expect(parseCloudinaryField("clips/raw_video", "video")).toMatchObject({
      kind: "asset",
      asset: { resourceType: "video", publicId: "clips/raw_video" }
    })
  })

  it("keeps the version and format", () => {
    expect(parseCloudinaryField("image/upload/v42/a/b.png", "image")).toMatchObject({ version: "42", format: "png" })
  })

  it.each([
    ["", "empty value"],
    ["   ", "whitespace only"],
    [" image/upload/x", "leading or trailing whitespace"],
    ["image/upload/", "no public id"],
    ["image/upload/v12/", "no public id"],
    ["https://res.cloudinary.com/demo/image/upload/x.jpg", "a URL, not a stored field value"],
    ["image/upload/bad\nname", "control characters in public id"]
  ])("reports %j as unparseable (%s)", (value, reason) => {
    expect(parseCloudinaryField(value, "image")).toEqual({ kind: "unparseable", reason })
  })

  it("treats NULL as no asset and the legacy default as a placeholder", () => {
    expect(parseCloudinaryField(null, "image")).toEqual({ kind: "none" })
    expect(parseCloudinaryField("placeholder", "image")).toEqual({ kind: "placeholder" })
  })
})

describe("promptAssets", () => {
  it("distinguishes an image and a video with the same public id", () => {
    const assets = promptAssets({ featuredImage: "image/upload/same", featuredVideo: "video/upload/same" })
    expect(assets.map(assetKey)).toEqual(["image/upload/same", "video/upload/same"])
  })

  it("skips placeholders and unparseable values", () => {
    expect(promptAssets({ featuredImage: "placeholder", featuredVideo: "  " })).toEqual([])
  })
})
