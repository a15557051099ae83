package train

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/alpaca-go/alpaca/pkg/cli"
	"github.com/alpaca-go/alpaca/pkg/xio"
)

const plotSummary = `Draws a trainer metrics file (--metrics of a training run) as a PNG: the
loss per step (with a moving average when the run is long, and the held-out
loss of --eval-every as a second series) above the learning rate per step.`

const plotExample = `trainer --model base --data tokens.bin --out tuned --metrics m.jsonl
trainer plot --metrics m.jsonl -o loss.png`

// PlotMain is `trainer plot`.
func PlotMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := cli.NewCommand("trainer plot", "--metrics FILE -o loss.png", plotSummary, plotExample)
	var metrics, title string
	var width, height float64
	var common cli.Common
	cmd.Flags.StringVar(&metrics, "metrics", "", "metrics JSONL `FILE` written by trainer --metrics (default stdin)")
	cmd.Flags.StringVar(&title, "title", "", "plot `TITLE` (default: the metrics file name)")
	cmd.Flags.Float64Var(&width, "width", 8, "image width in `INCHES` (96 dpi)")
	cmd.Flags.Float64Var(&height, "height", 6, "image height in `INCHES`")
	cmd.AddCommon(&common, cli.FlagOutput)
	pos, err := cmd.Parse(args)
	if err == nil && len(pos) > 0 {
		if metrics != "" || len(pos) > 1 {
			err = cli.Usagef("unexpected argument %q", pos[0])
		} else {
			metrics = pos[0]
		}
	}
	if err == nil && (common.Output == "" || common.Output == "-") {
		err = cli.Usagef("-o FILE.png is required")
	}
	if err == nil && (width <= 0 || height <= 0) {
		err = cli.Usagef("--width and --height must be positive")
	}
	if err == nil {
		err = plotMetrics(metrics, common.Output, title, width, height)
	}
	return cmd.Exit(err, stdout, stderr)
}

func plotMetrics(path, out, title string, w, h float64) error {
	in, err := xio.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	recs, err := ReadMetrics(in, in.Name)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("%s: no metrics to plot", in.Name)
	}
	if title == "" {
		title = filepath.Base(in.Name)
	}
	var loss, lr, evl plotter.XYs
	for _, r := range recs {
		if r.EvalLoss != nil {
			if !math.IsNaN(*r.EvalLoss) && !math.IsInf(*r.EvalLoss, 0) {
				evl = append(evl, plotter.XY{X: float64(r.Step), Y: *r.EvalLoss})
			}
			continue // an evaluation line has no learning rate
		}
		if r.Loss != nil && !math.IsNaN(*r.Loss) {
			loss = append(loss, plotter.XY{X: float64(r.Step), Y: *r.Loss})
		}
		lr = append(lr, plotter.XY{X: float64(r.Step), Y: r.LR})
	}
	if len(loss) == 0 {
		return fmt.Errorf("%s: no loss values", in.Name)
	}

	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = "step"
	pl.Y.Label.Text = "loss"
	pl.Add(plotter.NewGrid())
	raw, err := plotter.NewLine(loss)
	if err != nil {
		return err
	}
	raw.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	raw.Width = vg.Points(1)
	pl.Add(raw)
	pl.Legend.Add("loss", raw)
	if len(loss) >= 50 {
		win := max(5, len(loss)/25)
		sm, err := plotter.NewLine(movingAverage(loss, win))
		if err != nil {
			return err
		}
		sm.Color = color.RGBA{R: 214, G: 39, B: 40, A: 255}
		sm.Width = vg.Points(2)
		pl.Add(sm)
		pl.Legend.Add(fmt.Sprintf("mean of %d", win), sm)
	}
	if len(evl) > 0 {
		el, err := plotter.NewLine(evl)
		if err != nil {
			return err
		}
		el.Color = color.RGBA{R: 255, G: 127, B: 14, A: 255}
		el.Width = vg.Points(2)
		pts, err := plotter.NewScatter(evl)
		if err != nil {
			return err
		}
		pts.Color = el.Color
		pl.Add(el, pts)
		pl.Legend.Add("eval loss", el)
	}
	pl.Legend.Top = true

	pr := plot.New()
	pr.X.Label.Text = "step"
	pr.Y.Label.Text = "learning rate"
	pr.Add(plotter.NewGrid())
	ll, err := plotter.NewLine(lr)
	if err != nil {
		return err
	}
	ll.Color = color.RGBA{R: 44, G: 160, B: 44, A: 255}
	ll.Width = vg.Points(1.5)
	pr.Add(ll)
	pr.X.Min, pr.X.Max = pl.X.Min, pl.X.Max

	img := vgimg.NewWith(vgimg.UseWH(vg.Length(w)*vg.Inch, vg.Length(h)*vg.Inch), vgimg.UseDPI(96))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align([][]*plot.Plot{{pl}, {pr}}, tiles, dc)
	pl.Draw(canvases[0][0])
	pr.Draw(canvases[1][0])

	o, err := xio.CreateRaw(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(o); err != nil {
		o.Abort()
		return fmt.Errorf("%s: %w", out, err)
	}
	return o.Commit()
}

func movingAverage(xy plotter.XYs, win int) plotter.XYs {
	out := make(plotter.XYs, 0, len(xy))
	sum := 0.0
	for i := range xy {
		sum += xy[i].Y
		if i >= win {
			sum -= xy[i-win].Y
		}
		n := min(i+1, win)
		out = append(out, plotter.XY{X: xy[i].X, Y: sum / float64(n)})
	}
	return out
}
