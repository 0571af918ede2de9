package slide

// EncodeJ2K lets the external tests write JPEG 2000 DICOM frames.
var EncodeJ2K = encodeJ2K
