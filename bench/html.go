package bench

import "os"

// WriteHTMLFile writes the self-contained HTML report.
func (rep *Report) WriteHTMLFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteHTML is a placeholder until the plots land.
func (rep *Report) WriteHTML(w interface{ Write([]byte) (int, error) }) error {
	_, err := w.Write([]byte("<!doctype html><title>meshmeet bench</title>"))
	return err
}
