package sdk

import "slices"

// Merge returns the union of s and others, each list sorted and without
// duplicates: a check that reads what several parts of it need declares
// their union.
func (s Sandbox) Merge(others ...Sandbox) Sandbox {
	out := s.clone()
	for _, o := range others {
		out.ReadOnly = append(out.ReadOnly, o.ReadOnly...)
		out.ReadWrite = append(out.ReadWrite, o.ReadWrite...)
		out.Exec = append(out.Exec, o.Exec...)
		out.Devices = append(out.Devices, o.Devices...)
		out.UnixSockets = append(out.UnixSockets, o.UnixSockets...)
		out.BindTCP = append(out.BindTCP, o.BindTCP...)
		out.ConnectTCP = append(out.ConnectTCP, o.ConnectTCP...)
	}
	out.ReadOnly = sortUnique(out.ReadOnly)
	out.ReadWrite = sortUnique(out.ReadWrite)
	out.Exec = sortUnique(out.Exec)
	out.Devices = sortUnique(out.Devices)
	out.UnixSockets = sortUnique(out.UnixSockets)
	out.BindTCP = sortUnique(out.BindTCP)
	out.ConnectTCP = sortUnique(out.ConnectTCP)
	return out
}

func (s Sandbox) clone() Sandbox {
	return Sandbox{
		ReadOnly:    slices.Clone(s.ReadOnly),
		ReadWrite:   slices.Clone(s.ReadWrite),
		Exec:        slices.Clone(s.Exec),
		Devices:     slices.Clone(s.Devices),
		UnixSockets: slices.Clone(s.UnixSockets),
		BindTCP:     slices.Clone(s.BindTCP),
		ConnectTCP:  slices.Clone(s.ConnectTCP),
	}
}

func sortUnique[T interface{ ~string | ~uint16 }](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}
